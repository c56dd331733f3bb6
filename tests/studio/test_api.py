"""Studio's read-only JSON (``/studio/api/…``), over HTTP without a browser: what the page is
built from, and errors that name the fix."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from decimal import Decimal

import httpx
import pytest

from tests.server.conftest import RunningServer
from tidebase import RunContext, Tidebase
from tidebase.errors import GatePending


@pytest.fixture
def api(make_server: Callable[..., RunningServer]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=make_server().url, timeout=30) as client:
        yield client


def test_a_run_as_studio_reads_it(tide: Tidebase, api: httpx.Client) -> None:
    def wf(run: RunContext, _: None) -> str:
        def ask() -> str:
            run.usage.record(provider="openai", model="gpt-x", input_tokens=100,
                             output_tokens=20, cost_usd=Decimal("0.002"))  # fmt: skip
            return "answer " * 200

        run.step("ask", ask, input={"q": 1})
        run.state.set({"n": 1})
        run.state.set({"n": 2})
        run.child("sub", lambda child, _: child.step("x", lambda: 1))
        run.gate("ok", "OK?", wait=False)
        return "done"

    with contextlib.suppress(GatePending):
        tide.run("agent", wf, run_id="api-1")
    body = api.get("/studio/api/runs/api-1").json()

    assert body["run"]["status"] == "waiting" and body["run"]["workflow"] == "agent"
    [step] = body["steps"]
    info = tide.runs.steps("api-1")[0]
    assert step["name"] == "ask" and step["status"] == "completed"
    assert step["inputHash"] == info.input_hash and step["attempt"] == 1
    assert step["resumeDecision"] == info.resume_decision
    assert len(step["outputPreview"]) == 400 and step["outputPreview"].endswith("…")  # bounded
    assert body["state"] == {"value": {"n": 2}, "version": 2}
    assert [v["version"] for v in body["stateVersions"]] == [2, 1]  # newest first
    [gate] = body["gates"]
    assert gate["name"] == "ok" and gate["status"] == "pending"
    assert gate["resolveToken"] is None  # never shown to Studio
    usage = body["usage"]
    assert (usage["calls"], usage["inputTokens"], usage["outputTokens"]) == (1, 100, 20)
    assert usage["costUsd"] == pytest.approx(0.002)
    assert usage["byStep"][0]["name"] == "ask" and usage["byStep"][0]["totalTokens"] == 120
    assert usage["byModel"][0]["name"] == "openai/gpt-x"
    [child] = body["children"]
    assert child["run"]["workflow"] == "sub" and child["run"]["status"] == "completed"


def test_runs_filters_and_their_errors(tide: Tidebase, api: httpx.Client) -> None:
    tide.run("alpha", lambda run, _: 1, run_id="r-a")
    tide.run("beta", lambda run, _: 2, run_id="r-b")

    def ids(query: str) -> list[str]:
        return [r["id"] for r in api.get(f"/studio/api/runs{query}").json()["runs"]]

    assert ids("") == ["r-b", "r-a"]
    assert ids("?workflow=alpha") == ["r-a"]
    assert ids("?status=completed&limit=1") == ["r-b"]
    assert ids("?status=failed") == []

    bad = api.get("/studio/api/runs?status=done")
    assert bad.status_code == 400
    assert "use one of pending, queued, running" in bad.json()["error"]
    assert api.get("/studio/api/runs?limit=0").status_code == 400
    missing = api.get("/studio/api/runs/nope")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert api.get("/studio/api/info").json() == {"auth": False, "studio": 1}
