"""Studio fits a 1366×768 laptop screen: no page-wide horizontal scrolling, even with long
workflow names, run ids, outputs and event payloads."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tidebase import RunContext, Tidebase

from .conftest import VIEWPORT, Studio

LONG_WORKFLOW = "quarterly-revenue-reconciliation-with-" + "x" * 60
LONG_ID = "run_" + "0123456789abcdef" * 7


def assert_fits(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= VIEWPORT["width"], f"the page is {width}px wide"


def test_long_names_do_not_break_the_layout(tide: Tidebase, studio: Studio) -> None:
    def wf(run: RunContext, _: None) -> str:
        run.state.set({"notes": "n" * 3000})
        run.step("a-step-with-a-rather-long-name-" + "y" * 50, lambda: {"blob": "z" * 5000})
        run.usage.record(provider="some-provider", model="m" * 80, input_tokens=10)
        return "done"

    tide.run(LONG_WORKFLOW, wf, run_id=LONG_ID)
    page = studio.open()
    expect(page.locator(f'tr[data-run-id="{LONG_ID}"]')).to_be_visible()
    assert_fits(page)

    page.click(f'a[href="#/runs/{LONG_ID}"]')
    expect(page.locator('#events li[data-type="run.completed"]')).to_have_count(1)
    expect(page.locator("#usage-by-model")).to_be_visible()
    assert_fits(page)
    studio.shot("long-names")

    page.click('a[data-nav="queues"]')
    expect(page.locator("#queues-table, #queues-table + p, .card p.muted").first).to_be_visible()
    assert_fits(page)
