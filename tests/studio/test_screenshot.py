"""The run page of a realistic run, photographed: a research agent that planned, searched and
drafted (model calls recorded per step), fact-checked in a child run, kept live state, and now
waits at a publish gate. Kept as a test artifact; ``tools/studio_screenshot.py`` copies it to
``docs/images/studio-run.png`` for the README."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.server.conftest import KEY
from tidebase import RunContext, Tidebase
from tidebase.errors import GatePending

from .conftest import Studio

ENV = "TIDEBASE_STUDIO_SCREENSHOT"  # where to copy the picture (tools/studio_screenshot.py)


def research(run: RunContext, question: str) -> str:
    def plan() -> list[str]:
        run.usage.record(provider="openai", model="gpt-4o-mini", input_tokens=1840,
                         output_tokens=260, cost_usd=Decimal("0.00043"))  # fmt: skip
        return ["tidal energy capacity 2025", "tidal lagoon projects UK"]

    queries = run.step("plan", plan, input=question)
    run.state.set({"phase": "searching", "queries": len(queries), "sources": 0})
    sources = run.step(
        "search", lambda: [{"url": "https://example.org/tides", "score": 0.92}], input=queries
    )
    run.state.set({"phase": "drafting", "queries": len(queries), "sources": len(sources)})

    def draft() -> str:
        run.usage.record(provider="anthropic", model="claude-sonnet-4", input_tokens=6200,
                         output_tokens=1450, cost_usd=Decimal("0.04035"))  # fmt: skip
        return "Tidal power supplied about 0.5 TWh in 2025; the UK leads new projects…"

    text = run.step("draft", draft, input=sources)

    def check(child: RunContext, _: None) -> Any:
        def verify() -> dict[str, bool]:
            child.usage.record(provider="openai", model="gpt-4o-mini", input_tokens=2100,
                               output_tokens=120, cost_usd=Decimal("0.00039"))  # fmt: skip
            return {"supported": True}

        return child.step("verify", verify)

    run.child("fact-check", check)
    run.state.set({"phase": "awaiting approval", "queries": len(queries), "words": 212})
    run.state.save("draft-ready")
    decision = run.gate("publish", "Publish this answer to the customer?",
                        data={"words": 212, "sources": 1}, wait=False)  # fmt: skip
    return f"{decision.decision.value}: {text}"


def test_run_page_screenshot(tide: Tidebase, make_studio: Callable[..., Studio]) -> None:
    studio = make_studio(api_key=KEY)
    with contextlib.suppress(GatePending):
        tide.run("research-agent", research, run_id="run_7f3c2a", input="How much tidal power?")
    page = studio.open("#/runs/run_7f3c2a")
    page.fill("#key-input", KEY)
    page.click("#key-submit")
    page.fill("#actor", "maya")
    expect(page.locator('#timeline li[data-step="draft"]')).to_be_visible()
    expect(page.locator('[data-gate="publish"] .badge')).to_have_text("pending")
    expect(page.locator("#usage-by-model")).to_be_visible()
    expect(page.locator("#children li")).to_have_count(1)
    expect(page.locator('#events li[data-type="gate.opened"]')).to_have_count(1)
    page.mouse.move(0, 0)
    shot = studio.shot("run-page")
    target = os.environ.get(ENV)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
