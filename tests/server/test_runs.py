"""Runs over HTTP: create, list newest first, detail, cancel — on the same rows as in-process
runs (one store)."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from tidebase import RunContext, Tidebase
from tidebase.errors import RunCancelled


def test_create_run_is_pending_with_a_created_event(http: httpx.Client) -> None:
    res = http.post("/runs/report", json={"input": {"topic": "tides"}, "metadata": {"team": "a"}})
    assert res.status_code == 200
    run = res.json()["run"]
    assert run["id"].startswith("run_")
    assert run["workflowName"] == "report"
    assert run["status"] == "pending"
    assert run["input"] == {"topic": "tides"}
    assert run["metadata"] == {"team": "a"}
    assert run["attempt"] == 0
    assert run["leaseOwner"] is None
    assert run["createdAt"].endswith("Z")
    for field in ("result", "error", "cancelReason", "completedAt", "queue", "dedupeKey"):
        assert run[field] is None, field

    detail = http.get(f"/runs/{run['id']}").json()
    assert detail["run"] == run
    assert [(e["seq"], e["type"]) for e in detail["events"]] == [(1, "run.created")]
    assert detail["events"][0]["payload"]["workflowName"] == "report"
    assert detail["events"][0]["runId"] == run["id"]


def test_workflow_names_are_taken_from_the_path_and_input_defaults_to_empty(
    http: httpx.Client,
) -> None:
    run = http.post("/runs/my%20flow%2Fv2", json={}).json()["run"]
    assert run["workflowName"] == "my flow/v2"
    assert run["input"] == {}
    assert http.post("/runs/x", content=b"").json()["run"]["input"] == {}


def test_list_is_newest_first(http: httpx.Client) -> None:
    ids = [http.post("/runs/wf", json={"input": i}).json()["run"]["id"] for i in range(3)]
    listed = [r["id"] for r in http.get("/runs").json()["runs"]]
    assert listed[:3] == ids[::-1]
    assert [r["id"] for r in http.get("/runs?limit=2").json()["runs"]] == ids[::-1][:2]


def test_in_process_run_is_visible_over_http(tide: Tidebase, http: httpx.Client) -> None:
    def report(run: RunContext, data: dict[str, Any]) -> str:
        plan = run.step("plan", lambda: f"plan for {data['topic']}", input=data)
        run.state.set({"phase": "done"})
        return plan

    assert tide.run("report", report, run_id="r-inproc", input={"topic": "x"}) == "plan for x"
    listed = http.get("/runs").json()["runs"]
    assert listed[0]["id"] == "r-inproc"
    detail = http.get("/runs/r-inproc").json()
    assert detail["run"]["status"] == "completed"
    assert detail["run"]["result"] == "plan for x"
    assert detail["run"]["attempt"] == 1
    [step] = detail["steps"]
    assert step["name"] == "plan"
    assert step["status"] == "completed"
    assert step["output"] == "plan for x"
    assert step["inputHash"]
    assert detail["state"]["value"] == {"phase": "done"}
    types = [e["type"] for e in detail["events"]]
    assert types[0] == "run.started"
    assert types[-1] == "run.completed"
    assert "step.completed" in types
    assert [e["seq"] for e in detail["events"]] == list(range(1, len(types) + 1))


def test_run_created_over_http_is_executed_in_process(tide: Tidebase, http: httpx.Client) -> None:
    run = http.post("/runs/double", json={"input": {"n": 21}}).json()["run"]
    result = tide.run("double", lambda r, data: data["n"] * 2, run_id=run["id"])
    assert result == 42
    detail = http.get(f"/runs/{run['id']}").json()
    assert detail["run"]["status"] == "completed"
    assert detail["run"]["result"] == 42
    assert [e["type"] for e in detail["events"]] == ["run.created", "run.started", "run.completed"]


def test_cancel_pending_run_is_immediate_and_idempotent(http: httpx.Client) -> None:
    run = http.post("/runs/wf", json={}).json()["run"]
    first = http.post(
        f"/runs/{run['id']}/cancel", json={"reason": "operator request", "actor": "yao"}
    )
    assert first.status_code == 200
    cancelled = first.json()["run"]
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelReason"] == "operator request"
    assert cancelled["cancelActor"] == "yao"
    assert cancelled["cancelledAt"] is not None

    second = http.post(f"/runs/{run['id']}/cancel", json={})
    assert second.status_code == 200
    assert second.json()["run"]["cancelReason"] == "operator request"  # unchanged
    events = http.get(f"/runs/{run['id']}").json()["events"]
    assert [e["type"] for e in events].count("run.cancelled") == 1


def test_cancel_without_a_body(http: httpx.Client) -> None:
    run = http.post("/runs/wf", json={}).json()["run"]
    res = http.post(f"/runs/{run['id']}/cancel")
    assert res.status_code == 200
    assert res.json()["run"]["status"] == "cancelled"


def test_cancelling_a_completed_run_is_a_refused_no_op(tide: Tidebase, http: httpx.Client) -> None:
    tide.run("wf", lambda r, i: "done", run_id="r-done")
    res = http.post("/runs/r-done/cancel", json={})
    assert res.status_code == 409
    body = res.json()
    assert body["error"] == "run already completed"
    assert body["code"] == "run_completed"
    assert body["run"]["status"] == "completed"
    assert tide.runs.get("r-done").status == "completed"


def test_cancel_over_http_stops_an_in_process_run_waiting_at_a_gate(
    tide: Tidebase, http: httpx.Client
) -> None:
    at_gate = threading.Event()
    outcome: list[BaseException | object] = []

    def wf(run: RunContext, data: Any) -> str:
        run.step("prepare", lambda: "ok")
        at_gate.set()
        run.gate("approve", "Ship it?", timeout=60)
        return "shipped"

    def worker() -> None:
        try:
            outcome.append(tide.run("wf", wf, run_id="r-gate"))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    assert at_gate.wait(30)
    # The gate is open once the run shows it (same transaction as 'waiting').
    _wait_for(lambda: http.get("/runs/r-gate").json()["run"]["status"] == "waiting")
    res = http.post("/runs/r-gate/cancel", json={"reason": "stop", "actor": "ops"})
    assert res.status_code == 200
    thread.join(30)
    assert not thread.is_alive()
    assert isinstance(outcome[0], RunCancelled)
    run = tide.runs.get("r-gate")
    assert run.status == "cancelled"


def _wait_for(check: Any, timeout: float = 30) -> None:
    """Poll a condition written by another thread (each look is one HTTP read)."""
    import time

    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached")
        time.sleep(0.02)
