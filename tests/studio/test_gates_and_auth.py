"""Operating runs with the API key on: Studio asks for the key once, keeps it for the tab, sends
it as a bearer header (and as ?token= on the event stream only); approving or rejecting a
pending gate in Studio unblocks the worker waiting in ``run.gate`` with that decision and actor.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import httpx
from playwright.sync_api import Page, expect

from tests.server.conftest import KEY
from tidebase import RunContext, Tidebase

from .conftest import Studio
from .helpers import run_in_thread


def unlock(page: Page, key: str = KEY) -> None:
    expect(page.locator("#key-dialog")).to_be_visible()
    page.fill("#key-input", key)
    page.click("#key-submit")


def test_approving_and_rejecting_gates_in_studio_unblocks_the_waiting_worker(
    tide: Tidebase, make_studio: Callable[..., Studio]
) -> None:
    studio = make_studio(api_key=KEY)
    at_second = threading.Event()

    def wf(run: RunContext, _: None) -> dict[str, Any]:
        run.step("draft", lambda: "a release note")
        first = run.gate("budget", "Spend $40 on the launch?", data={"usd": 40}, timeout=30)
        at_second.set()
        second = run.gate("publish", "Publish the note?", timeout=30)
        return {
            "budget": [first.decision.value, first.actor],
            "publish": [second.decision.value, second.actor],
        }

    bg = run_in_thread(tide, "launch", wf, run_id="gate-1")
    page = studio.open("#/runs/gate-1")
    unlock(page)
    budget = page.locator('[data-gate="budget"]')
    expect(budget.locator(".badge")).to_have_text("pending")
    expect(budget).to_contain_text("Spend $40 on the launch?")
    expect(page.locator("#run-head .badge").first).to_have_text("waiting")
    page.fill("#actor", "alice")
    # Redrawn as the name is typed (read at once, no waiting): a redraw at the next refresh
    # would replace the buttons under the click below, and the click would be lost.
    assert "as alice" in (budget.locator(".gate-msg").text_content() or "")
    studio.shot("pending-gate")
    budget.get_by_role("button", name="Approve").click()

    assert at_second.wait(10), "the worker did not continue after the approval"
    expect(budget.locator(".badge")).to_have_text("approved")
    expect(budget).to_contain_text("approved by alice")
    publish = page.locator('[data-gate="publish"]')
    expect(publish.locator(".badge")).to_have_text("pending")
    publish.get_by_role("button", name="Reject").click()

    assert bg.result() == {"budget": ["approved", "alice"], "publish": ["rejected", "alice"]}
    expect(publish).to_contain_text("rejected by alice")
    expect(page.locator("#run-head .badge").first).to_have_text("completed")
    expect(page.locator('#events li[data-type="gate.resolved"]')).to_have_count(2)


def test_a_gate_needs_a_name_to_act_as(tide: Tidebase, make_studio: Callable[..., Studio]) -> None:
    studio = make_studio(api_key=KEY)
    bg = run_in_thread(tide, "launch", lambda run, _: run.gate("ok", "OK?", timeout=30).actor,
                       run_id="gate-2")  # fmt: skip
    page = studio.open("#/runs/gate-2")
    unlock(page)
    gate = page.locator('[data-gate="ok"]')
    gate.get_by_role("button", name="Approve").click()
    expect(gate.locator(".gate-msg")).to_contain_text("Enter your name")
    expect(gate.locator(".badge")).to_have_text("pending")
    page.fill("#actor", "bob")
    gate.get_by_role("button", name="Approve").click()
    assert bg.result() == "bob"


def test_without_an_api_key_studio_shows_gates_but_does_not_decide_them(
    tide: Tidebase, studio: Studio
) -> None:
    """Unauthenticated callers need the gate's resolve token (never shown without the key)."""
    from tidebase.errors import GatePending

    def wf(run: RunContext, _: None) -> str:
        return run.gate("ship", "Ship it?", wait=False).decision.value

    with contextlib.suppress(GatePending):
        tide.run("deploy", wf, run_id="open-1")
    page = studio.open("#/runs/open-1")
    gate = page.locator('[data-gate="ship"]')
    expect(gate.get_by_role("button", name="Approve")).to_be_disabled()
    expect(gate).to_contain_text("TIDEBASE_API_KEY")
    expect(gate).to_contain_text("tidebase gates approve open-1 ship --actor NAME")
    expect(page.locator("#key-dialog")).to_be_hidden()


def test_auth_key_prompt_wrong_key_then_the_right_one_and_sse_with_token(
    tide: Tidebase, make_studio: Callable[..., Studio]
) -> None:
    studio = make_studio(api_key=KEY)
    tide.run("indexer", lambda run, _: run.step("scan", lambda: 3), run_id="auth-1")
    page = studio.open()
    expect(page.locator("#runs-table")).to_have_count(0)  # nothing shown before the key

    unlock(page, "not-the-key")
    expect(page.locator("#key-error")).to_contain_text("refused this key")
    expect(page.locator("#key-dialog")).to_be_visible()
    studio.shot("wrong-key")

    unlock(page, KEY)
    expect(page.locator("#key-dialog")).to_be_hidden()
    expect(page.locator('tr[data-run-id="auth-1"]')).to_be_visible()
    page.click('a[href="#/runs/auth-1"]')
    expect(page.locator('#events li[data-type="run.completed"]')).to_have_count(1)
    expect(page.locator('#timeline li[data-step="scan"]')).to_have_attribute(
        "data-status", "completed"
    )

    page.reload()  # kept for the tab: no second prompt
    expect(page.locator('#events li[data-type="run.completed"]')).to_have_count(1)
    expect(page.locator("#key-dialog")).to_be_hidden()

    with_key = [url for url in studio.requests if KEY in url]
    assert with_key and all("/runs/auth-1/events?token=" in url for url in with_key), with_key
    assert KEY not in page.url

    page.click("#forget-key")
    expect(page.locator("#key-dialog")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_the_page_is_open_and_its_data_needs_the_key(make_studio: Callable[..., Studio]) -> None:
    studio = make_studio(api_key=KEY)
    base = studio.server.url
    with httpx.Client(base_url=base, timeout=10) as http:
        page = http.get("/studio/")
        assert page.status_code == 200 and "Tidebase Studio" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        script = http.get("/studio/js/app.js")
        assert script.headers["content-type"] == "text/javascript; charset=utf-8"
        assert http.get("/studio/nope.js").status_code == 404
        for escape in ("/studio/..%2F__init__.py", "/studio/%2e%2e/__init__.py"):
            assert http.get(escape).status_code == 404, escape  # only the static folder
        assert http.get("/studio", follow_redirects=False).headers["location"] == "/studio/"
        for path in ("/studio/api/info", "/studio/api/runs", "/studio/api/queues"):
            assert http.get(path).status_code == 401, path
            assert http.get(path, headers={"authorization": "Bearer nope"}).status_code == 401
            ok = http.get(path, headers={"authorization": f"Bearer {KEY}"})
            assert ok.status_code == 200, (path, ok.text)
        assert http.get(f"/studio/api/runs?token={KEY}").status_code == 401  # SSE only
        assert http.post("/studio/").status_code == 405
