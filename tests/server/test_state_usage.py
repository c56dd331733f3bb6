"""State, versions, snapshots and usage of an in-process run, read over HTTP."""

from __future__ import annotations

from typing import Any

import httpx

from tidebase import RunContext, Tidebase


def _run(tide: Tidebase) -> None:
    def wf(run: RunContext, data: Any) -> str:
        run.state.set({"phase": "plan", "progress": 0})
        run.state.patch({"progress": 0.5})
        run.state.save("halfway")

        def call() -> str:
            run.usage.record(
                provider="openai", model="gpt-4o", input_tokens=10, output_tokens=5, cost_usd=0.01
            )
            return "answer"

        run.step("ask", call)
        run.state.patch({"phase": "done", "progress": 1})
        return "ok"

    tide.run("wf", wf, run_id="s1")


def test_state_and_versions(tide: Tidebase, http: httpx.Client) -> None:
    _run(tide)
    state = http.get("/runs/s1/state").json()["state"]
    assert state["value"] == {"phase": "done", "progress": 1}
    assert state["runId"] == "s1"
    versions = http.get("/runs/s1/state/versions").json()["stateVersions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[1]["value"] == {"phase": "plan", "progress": 0.5}
    assert versions[1]["label"] == "halfway"
    assert state["version"] == 3
    labeled = http.get("/runs/s1/state/versions?labeled=true").json()["stateVersions"]
    assert [v["version"] for v in labeled] == [2]
    assert http.get("/runs/s1/state/versions?stream=other").json()["stateVersions"] == []
    snapshots = http.get("/runs/s1/snapshots").json()["snapshots"]
    assert [(s["version"], s["label"]) for s in snapshots] == [(2, "halfway")]
    detail = http.get("/runs/s1").json()
    assert detail["state"]["value"] == state["value"]
    assert len(detail["stateVersions"]) == 3


def test_state_of_a_run_without_state(http: httpx.Client) -> None:
    run = http.post("/runs/wf", json={}).json()["run"]
    assert http.get(f"/runs/{run['id']}/state").json() == {"state": None}


def test_usage(tide: Tidebase, http: httpx.Client) -> None:
    _run(tide)
    body = http.get("/runs/s1/usage").json()
    [record] = body["usage"]
    assert record["provider"] == "openai"
    assert record["model"] == "gpt-4o"
    assert record["inputTokens"] == 10
    assert record["outputTokens"] == 5
    assert record["totalTokens"] == 15
    assert record["costUsd"] == 0.01
    assert record["stepName"] == "ask"
    assert record["attempt"] == 1
    assert body["summary"]["totalTokens"] == 15
    assert body["summary"]["costUsd"] == 0.01
    assert body["summary"]["byModel"][0]["model"] == "gpt-4o"
    assert http.get("/runs/s1").json()["usage"] == body["usage"]
