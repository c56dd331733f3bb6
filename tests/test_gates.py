"""Guarantee 6: a gate resolves exactly once under concurrent resolvers; its decision replays."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from tidebase import RunContext, Tidebase
from tidebase.errors import (
    GateAlreadyResolved,
    GateNotFound,
    GatePending,
    GateTimeout,
    GateTokenMismatch,
    RunCancelled,
    RunNotFound,
)
from tidebase_core._sync.store import StoreConnection

from .conftest import executions


def approval_flow(run: RunContext, input: None) -> dict:
    draft = run.step("draft", lambda: "a draft")
    decision = run.gate("approve", "Publish?", data={"draft": draft})
    if not decision.approved:
        return {"published": False, "by": decision.actor}
    return {"published": run.step("publish", lambda: True), "by": decision.actor}


def start_in_thread(tide: Tidebase, fn, run_id: str) -> tuple[threading.Thread, list]:  # type: ignore[no-untyped-def]
    outcome: list = []

    def go() -> None:
        try:
            outcome.append(tide.run("flow", fn, run_id=run_id))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    return thread, outcome


def wait_for_gate(tide: Tidebase, run_id: str, name: str = "approve") -> None:
    deadline = time.monotonic() + 30
    while True:
        if any(g.run_id == run_id and g.name == name for g in tide.gates.list(status="pending")):
            return
        assert time.monotonic() < deadline, "the gate never opened"
        time.sleep(0.02)


def test_eight_concurrent_resolvers_one_wins(tide: Tidebase) -> None:
    thread, outcome = start_in_thread(tide, approval_flow, "g1")
    wait_for_gate(tide, "g1")
    assert tide.runs.get("g1").status == "waiting"

    barrier = threading.Barrier(8)
    results: list[object] = []

    def resolver(i: int) -> None:
        barrier.wait()
        try:
            results.append(tide.gates.resolve("g1", "approve", "approved", actor=f"r{i}"))
        except GateAlreadyResolved as exc:
            results.append(exc)

    resolvers = [threading.Thread(target=resolver, args=(i,)) for i in range(8)]
    for t in resolvers:
        t.start()
    for t in resolvers:
        t.join(30)
    thread.join(30)

    winners = [r for r in results if not isinstance(r, GateAlreadyResolved)]
    assert len(winners) == 1 and len(results) == 8
    assert outcome == [{"published": True, "by": winners[0].actor}]  # type: ignore[union-attr]
    gate = tide.gates.get("g1", "approve")
    assert (gate.status, gate.actor) == ("approved", winners[0].actor)  # type: ignore[union-attr]
    resolved = [e for e in tide.runs.events("g1") if e.type == "gate.resolved"]
    assert len(resolved) == 1
    # and it replays: a second run of the workflow gets the recorded decision at once
    assert tide.runs.get("g1").status == "completed"


def test_the_waiting_worker_sleeps_on_notify_not_polling(
    tide: Tidebase, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    original = StoreConnection.get_gate

    def counting(self: StoreConnection, run_id: str, name: str):  # type: ignore[no-untyped-def]
        reads.append(name)
        return original(self, run_id, name)

    monkeypatch.setattr(StoreConnection, "get_gate", counting)
    thread, outcome = start_in_thread(tide, approval_flow, "g2")
    wait_for_gate(tide, "g2")
    time.sleep(1.0)  # a polling waiter would read the gate many times in a second
    waiting_reads = len(reads)
    started = time.monotonic()
    tide.gates.resolve("g2", "approve", "rejected", actor="ada")
    thread.join(30)
    assert outcome == [{"published": False, "by": "ada"}]
    assert waiting_reads <= 3  # the first look, and the look before sleeping on LISTEN
    assert time.monotonic() - started < 10  # woken by NOTIFY, not by the 30 s safety net


def test_wait_false_parks_the_run_and_re_invoking_after_the_decision_continues(
    tide: Tidebase,
) -> None:
    ran: list[str] = []

    def flow(run: RunContext, input: None) -> str:
        run.step("draft", lambda: ran.append("draft"))
        decision = run.gate("approve", "Ship it?", wait=False)
        run.step("ship", lambda: ran.append("ship"))
        return f"shipped by {decision.actor}"

    with pytest.raises(GatePending, match=r"tide\.gates\.resolve"):
        tide.run("flow", flow, run_id="g3")
    run = tide.runs.get("g3")
    assert run.status == "waiting" and run.lease_expires_at is None  # no worker holds it
    with pytest.raises(GatePending):  # invoked again before the decision: parks again
        tide.run("flow", flow, run_id="g3")
    token = tide.gates.get("g3", "approve").token
    with pytest.raises(GateTokenMismatch):
        tide.gates.resolve("g3", "approve", "approved", actor="eve", token="forged")
    tide.gates.resolve("g3", "approve", "approved", actor="bob", token=token)
    assert tide.runs.get("g3").status == "pending"  # decided, ready to continue
    assert tide.run("flow", flow, run_id="g3") == "shipped by bob"
    assert ran == ["draft", "ship"]
    with pytest.raises(GateAlreadyResolved, match="already approved by bob"):
        tide.gates.resolve("g3", "approve", "rejected", actor="late")


@pytest.mark.slow
def test_the_decision_replays_after_a_sigkill(spawn, tide: Tidebase, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "executions.log"
    worker = spawn("g4", log, SCENARIO="gate", BLOCK_AT="publish")
    wait_for_gate(tide, "g4")
    tide.gates.resolve("g4", "approve", "approved", actor="ada", payload={"note": "ship it"})
    worker.expect("IN publish")
    worker.kill()  # dies after passing the gate

    resumed = spawn("g4", log, SCENARIO="gate")
    line = resumed.finish()
    assert json.loads(line.removeprefix("RESULT ")) == {
        "published": True,
        "by": "ada",
        "note": {"note": "ship it"},
    }
    assert executions(log) == {"draft": 1, "publish": 2, "notify": 1}
    assert [e.type for e in tide.runs.events("g4")].count("gate.opened") == 1


@pytest.mark.slow
def test_wait_false_lets_the_process_exit_and_a_new_one_continue(
    spawn,
    tide: Tidebase,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    log = tmp_path / "executions.log"
    first = spawn("g5", log, SCENARIO="gate", GATE_WAIT="0")
    assert first.finish().startswith("ERROR GatePending")
    tide.gates.resolve("g5", "approve", "approved", actor="ops")
    second = spawn("g5", log, SCENARIO="gate", GATE_WAIT="0")
    assert json.loads(second.finish().removeprefix("RESULT "))["by"] == "ops"
    assert executions(log) == {"draft": 1, "publish": 1, "notify": 1}


def test_timeout_cancel_and_bad_input(tide: Tidebase) -> None:
    def impatient(run: RunContext, input: None) -> None:
        run.gate("approve", "Quick?", timeout=0.2)

    with pytest.raises(GateTimeout, match=r"no decision within 0\.2s"):
        tide.run("flow", impatient, run_id="g6")
    assert tide.gates.get("g6", "approve").status == "pending"  # the gate stays open

    thread, outcome = start_in_thread(tide, approval_flow, "g7")
    wait_for_gate(tide, "g7")
    tide.runs.cancel("g7", reason="no longer needed")
    thread.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], RunCancelled)

    with pytest.raises(ValueError, match="'approved' or 'rejected'"):
        tide.gates.resolve("g6", "approve", "maybe", actor="x")
    with pytest.raises(GateNotFound):
        tide.gates.resolve("g6", "nope", "approved", actor="x")
    with pytest.raises(RunNotFound):
        tide.gates.resolve("missing", "approve", "approved", actor="x")

    def bad_timeout(run: RunContext, input: None) -> None:
        run.gate("g", "?", timeout=-1)

    with pytest.raises(ValueError, match="timeout must be a number of seconds"):
        tide.run("flow", bad_timeout, run_id="g8")
