"""The run page: the timeline fills live as steps checkpoint, the event stream arrives over
EventSource, cancelling from Studio stops the run at its next step, and the usage chart shows
the recorded tokens and cost per step and per model."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tidebase import RunContext, Tidebase
from tidebase.errors import RunCancelled

from .conftest import Studio
from .helpers import run_in_thread


def test_the_timeline_fills_live_as_steps_complete(tide: Tidebase, studio: Studio) -> None:
    go_fetch = threading.Event()
    go_summarize = threading.Event()

    def wf(run: RunContext, topic: str) -> str:
        run.step("plan", lambda: {"topic": topic, "queries": 2})
        run.state.set({"phase": "fetching"})
        rows = run.step("fetch", lambda: go_fetch.wait(30) and [1, 2, 3])
        run.state.set({"phase": "summarizing", "rows": len(rows)})
        return str(run.step("summarize", lambda: go_summarize.wait(30) and f"{len(rows)} rows"))

    bg = run_in_thread(tide, "research", wf, run_id="tl-1", input="tides")
    page = studio.open("#/runs/tl-1")
    timeline = page.locator("#timeline")
    plan = timeline.locator('li[data-step="plan"]')
    expect(plan).to_have_attribute("data-status", "completed")
    expect(plan.locator(".output")).to_have_text('{"topic": "tides", "queries": 2}')
    expect(plan.locator(".step-meta code")).not_to_have_text("—")  # the input hash
    expect(timeline.locator('li[data-step="fetch"]')).to_have_count(0)
    expect(page.locator("#state-value")).to_contain_text('"phase": "fetching"')
    expect(page.locator("#run-head .badge").first).to_have_text("running")
    loaded = page.evaluate("performance.timeOrigin")

    go_fetch.set()
    fetch = timeline.locator('li[data-step="fetch"]')
    expect(fetch).to_have_attribute("data-status", "completed")
    expect(fetch.locator(".output")).to_have_text("[1, 2, 3]")
    expect(page.locator("#state-value")).to_contain_text('"phase": "summarizing"')
    expect(page.locator('#events li[data-type="step.completed"]')).to_have_count(2)
    studio.shot("mid-run")

    go_summarize.set()
    assert bg.result() == "3 rows"
    expect(timeline.locator('li[data-step="summarize"]')).to_have_attribute(
        "data-status", "completed"
    )
    expect(page.locator("#run-head .badge").first).to_have_text("completed")
    expect(page.locator('#events li[data-type="run.completed"]')).to_have_count(1)
    expect(page.locator("#stream-state")).to_contain_text("ended")
    assert [s.get_attribute("data-step") for s in timeline.locator("li[data-step]").all()] == [
        "plan",
        "fetch",
        "summarize",
    ]
    # the whole event log arrived, in order, over the stream (live, no reload)
    seqs = [e.seq for e in tide.runs.events("tl-1")]
    shown = page.locator("#events li").evaluate_all("els => els.map(e => +e.dataset.seq)")
    assert sorted(shown) == seqs
    assert page.evaluate("performance.timeOrigin") == loaded

    page.click(".versions summary")  # every version of the live state, newest first
    versions = page.locator(".versions tr")
    expect(versions).to_have_count(2)
    expect(versions.first).to_contain_text('"phase": "summarizing"')
    expect(versions.first.locator("td").first).to_have_text("v2")


def test_cancelling_in_studio_stops_the_run_at_its_next_step(
    tide: Tidebase, studio: Studio
) -> None:
    inside = threading.Event()
    finish = threading.Event()
    ran: list[str] = []

    def slow() -> str:
        ran.append("slow")
        inside.set()
        finish.wait(30)
        return "slow done"

    def mark(name: str) -> str:
        ran.append(name)
        return name

    def wf(run: RunContext, _: None) -> str:
        run.step("first", lambda: mark("first"))
        run.step("slow", slow)
        run.step("after", lambda: mark("after"))
        return "done"

    bg = run_in_thread(tide, "cleanup", wf, run_id="cx-1")
    assert inside.wait(10)
    page = studio.open("#/runs/cx-1")
    page.fill("#actor", "ada")
    page.click("#cancel-run")
    page.fill("#cancel-reason", "runaway loop")
    studio.shot("confirm")
    page.click("#cancel-confirm")
    expect(page.locator("#run-head .badge").first).to_have_text("cancelled")
    expect(page.locator("#cancel-run")).to_have_count(0)  # nothing left to cancel
    studio.shot("cancelled")

    finish.set()  # the step in flight ends; the run must not go on to "after"
    with pytest.raises(RunCancelled):
        bg.result()
    assert ran == ["first", "slow"]
    assert tide.runs.get("cx-1").status == "cancelled"
    [event] = [e for e in tide.runs.events("cx-1") if e.type == "run.cancelled"]
    assert event.payload == {"reason": "runaway loop", "actor": "ada"}
    expect(page.locator('#events li[data-type="run.cancelled"]')).to_have_count(1)


def test_the_usage_chart_shows_tokens_and_cost_per_step_and_model(
    tide: Tidebase, studio: Studio
) -> None:
    def wf(run: RunContext, _: None) -> str:
        def draft() -> str:
            run.usage.record(provider="openai", model="gpt-x", input_tokens=1200,
                             output_tokens=300, cost_usd=Decimal("0.0123"))  # fmt: skip
            return "draft"

        def review() -> str:
            run.usage.record(provider="anthropic", model="claude-y", input_tokens=800,
                             output_tokens=200, cost_usd=Decimal("0.0040"))  # fmt: skip
            run.usage.record(provider="openai", model="gpt-x", input_tokens=100,
                             output_tokens=50, cost_usd=Decimal("0.0010"))  # fmt: skip
            return "ok"

        run.step("draft", draft)
        run.step("review", review)
        return "done"

    tide.run("writer", wf, run_id="u-1")
    page = studio.open("#/runs/u-1")
    expect(page.locator("#usage-total")).to_contain_text("2,650 tokens")
    expect(page.locator("#usage-total")).to_contain_text("$0.0173")
    expect(page.locator("#usage-total")).to_contain_text("3 calls")

    by_step = page.locator("#usage-by-step")
    expect(by_step.locator('g[data-name="draft"] .bar-value')).to_have_text("1,500 tok · $0.0123")
    expect(by_step.locator('g[data-name="review"] .bar-value')).to_have_text("1,150 tok · $0.0050")
    by_model = page.locator("#usage-by-model")
    expect(by_model.locator('g[data-name="openai/gpt-x"] .bar-value')).to_have_text(
        "1,650 tok · $0.0133"
    )
    expect(by_model.locator('g[data-name="anthropic/claude-y"] .bar-value')).to_have_text(
        "1,000 tok · $0.0040"
    )
    # bars are drawn to scale: openai/gpt-x (1,650) is longer than anthropic/claude-y (1,000)
    widths = {
        name: by_model.locator(f'g[data-name="{name}"]').evaluate(
            "g => [...g.querySelectorAll('.bar-in, .bar-out')]"
            ".reduce((w, r) => w + r.getBBox().width, 0)"
        )
        for name in ("openai/gpt-x", "anthropic/claude-y")
    }
    assert widths["openai/gpt-x"] > widths["anthropic/claude-y"] > 0
    studio.shot("usage")


def test_the_run_page_shows_its_budget_and_usage_by_agent(tide: Tidebase, studio: Studio) -> None:
    from tidebase import Budget

    def wf(run: RunContext, _: None) -> str:
        def research() -> str:
            run.usage.record(provider="openai", model="gpt-x", input_tokens=600,
                             output_tokens=100, cost_usd=Decimal("0.40"),
                             agent="researcher")  # fmt: skip
            return "notes"

        def write() -> str:
            run.usage.record(provider="openai", model="gpt-x", input_tokens=300,
                             output_tokens=100, cost_usd=Decimal("0.45"),
                             agent="writer")  # fmt: skip
            return "text"

        run.step("research", research)
        run.step("write", write)
        return "done"

    tide.run("writer", wf, run_id="b-1", budget=Budget(usd=1, tokens=5000))
    page = studio.open("#/runs/b-1")
    budget = page.locator("#budget")
    expect(budget).to_contain_text("$0.8500 of $1.00 (85 %)")
    expect(budget).to_contain_text("1,100 of 5,000 tokens (22 %)")
    expect(budget.locator(".budget-cap.warn")).to_have_count(1)  # the dollars, past 80 %
    by_agent = page.locator("#usage-by-agent")
    expect(by_agent.locator('g[data-name="researcher"] .bar-value')).to_have_text(
        "700 tok · $0.4000"
    )
    expect(by_agent.locator('g[data-name="writer"] .bar-value')).to_have_text("400 tok · $0.4500")
    studio.shot("budget")


def test_a_hidden_tab_gives_its_stream_back_and_catches_up_when_shown(
    tide: Tidebase, studio: Studio
) -> None:
    go = threading.Event()

    def wf(run: RunContext, _: None) -> str:
        run.step("one", lambda: 1)
        run.step("two", lambda: go.wait(30) and 2)
        return "done"

    bg = run_in_thread(tide, "pausable", wf, run_id="vis-1")
    page = studio.open("#/runs/vis-1")
    expect(page.locator('#events li[data-type="step.completed"]')).to_have_count(1)
    expect(page.locator("#stream-state")).to_have_text("live")

    page.evaluate(SET_HIDDEN, True)
    expect(page.locator("#stream-state")).to_contain_text("paused")
    go.set()
    assert bg.result() == "done"
    page.evaluate(SET_HIDDEN, False)

    expect(page.locator('#events li[data-type="run.completed"]')).to_have_count(1)
    shown = page.locator("#events li").evaluate_all("els => els.map(e => +e.dataset.seq)")
    assert sorted(shown) == [e.seq for e in tide.runs.events("vis-1")]  # no gap, no repeat
    resumed = [url for url in studio.requests if "/runs/vis-1/events?after=" in url]
    assert resumed, studio.requests  # it picked up after the last event it had


SET_HIDDEN = """hidden => {
    Object.defineProperty(document, "hidden", { value: hidden, configurable: true });
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_a_step_parked_for_review_says_what_to_do(tide: Tidebase, studio: Studio) -> None:
    def send() -> str:
        raise RuntimeError("the mail server hung up (did it send?)")

    def wf(run: RunContext, _: None) -> str:
        return str(run.step("send mail", send, side_effects=["email"]))

    with pytest.raises(RuntimeError):
        tide.run("mailer", wf, run_id="park-1")
    page = studio.open("#/runs/park-1")
    send_step = page.locator('#timeline li[data-step="send mail"]')
    expect(send_step).to_have_attribute("data-status", "manual_review")
    expect(send_step).to_contain_text("did it send?")
    expect(send_step.locator(".hint")).to_contain_text(
        "tidebase runs retry-step park-1 'send mail'"  # a shell word, ready to paste
    )
    expect(page.locator("#run-head .badge").first).to_have_text("failed")
    expect(page.locator("#run-head .hint")).to_contain_text(
        "settle the step marked below, then re-invoke the run (rerun your code, or "
        "tidebase runs recover park-1 for a worker)"
    )
    studio.shot("parked")


def test_an_unknown_run_says_so(studio: Studio) -> None:
    studio.expected_console.append("404")
    page = studio.open("#/runs/no-such-run")
    expect(page.locator("#run-error")).to_have_text("No run no-such-run in this database.")
    expect(page.locator("#stream-state")).to_have_text("no stream")
    assert not [url for url in studio.requests if "/events" in url]  # no stream to retry
