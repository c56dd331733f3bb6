"""The runs list is live: a run started in-process shows up within a second, without a reload,
and its status follows; the status and workflow filters narrow it."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from tidebase import RunContext, Tidebase

from .conftest import Studio
from .helpers import Hold, run_in_thread


def test_a_run_started_in_process_appears_within_a_second_without_reload(
    tide: Tidebase, studio: Studio
) -> None:
    tide.run("warmup", lambda run, _: run.step("only", lambda: 1), run_id="old-1")
    page = studio.open()
    expect(page.locator('tr[data-run-id="old-1"]')).to_be_visible()
    loaded = page.evaluate("performance.timeOrigin")

    hold = Hold()

    def wf(run: RunContext, data: dict[str, int]) -> int:
        run.step("wait", hold)
        return data["n"]

    bg = run_in_thread(tide, "nightly-report", wf, run_id="live-1", input={"n": 7})
    assert hold.entered.wait(10)  # the run exists and is running now
    started = time.monotonic()
    row = page.locator('tr[data-run-id="live-1"]')
    expect(row).to_be_visible(timeout=1000)
    assert time.monotonic() - started < 1.0
    expect(row).to_have_attribute("data-status", "running")
    expect(row.locator(".wf")).to_have_text("nightly-report")
    studio.shot("running")

    hold.release()
    assert bg.result() == 7
    expect(row).to_have_attribute("data-status", "completed")
    assert page.evaluate("performance.timeOrigin") == loaded  # never reloaded
    # newest first
    expect(page.locator("#runs-body tr").first).to_have_attribute("data-run-id", "live-1")


def test_filters_by_status_and_workflow(tide: Tidebase, studio: Studio) -> None:
    tide.run("alpha", lambda run, _: run.step("s", lambda: 1), run_id="a-done")
    tide.run("beta", lambda run, _: run.step("s", lambda: 1), run_id="b-done")
    hold = Hold()
    bg = run_in_thread(tide, "alpha", lambda run, _: run.step("s", hold), run_id="a-running")
    assert hold.entered.wait(10)
    page = studio.open()
    rows = page.locator("#runs-body tr")
    expect(rows).to_have_count(3)

    page.select_option("#filter-status", "running")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", "a-running")

    page.select_option("#filter-status", "")
    page.fill("#filter-workflow", "beta")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", "b-done")

    page.select_option("#filter-status", "completed")
    page.fill("#filter-workflow", "alpha")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", "a-done")
    assert "status=completed" in page.url and "workflow=alpha" in page.url
    hold.release()
    bg.result()
    expect(rows).to_have_count(2)  # a-running completed: it joins the filtered list live


def test_a_failed_run_shows_its_error_in_the_list(tide: Tidebase, studio: Studio) -> None:
    def boom() -> None:
        raise ValueError("the invoice total is negative")

    with pytest.raises(ValueError):
        tide.run("billing", lambda run, _: run.step("check", boom), run_id="f-1")
    page = studio.open("#/?status=failed")
    expect(page.locator("#filter-status")).to_have_value("failed")
    row = page.locator('tr[data-run-id="f-1"]')
    expect(row).to_have_attribute("data-status", "failed")
    expect(row.locator(".row-error")).to_contain_text("the invoice total is negative")
