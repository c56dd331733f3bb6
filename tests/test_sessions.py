"""Session runs (runs.attach), runs.create/recover, non-blocking gates, snapshots, and the
official SDK's child/fanout argument forms."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from tidebase import RunContext, RunSession, Tidebase
from tidebase.errors import RunLocked, TidebaseError
from tidebase_core._sync.sessions import SessionClosed

from .test_queues import wait_for


def test_attach_is_a_run_context_that_replays_and_completes(tide: Tidebase) -> None:
    calls: list[int] = []
    session = tide.runs.attach("chat", input={"kind": "test"})
    assert isinstance(session, RunSession)
    assert tide.runs.get(session.run_id).status == "running"
    assert session.step("call:abc", lambda: calls.append(1) or "tool", input={"q": 1}) == "tool"
    session.state.set({"turn": 1})
    session.close()  # give the run back unfinished
    assert tide.runs.get(session.run_id).status == "pending"

    again = tide.runs.attach("chat", run_id=session.run_id)
    assert again.input == {"kind": "test"}
    assert again.step("call:abc", lambda: calls.append(2) or "fresh", input={"q": 1}) == "tool"
    assert calls == [1]  # replayed, not executed
    info = again.complete({"calls": 1})
    assert (info.status, info.result) == ("completed", {"calls": 1})
    with pytest.raises(TidebaseError, match="already completed"):
        tide.runs.attach("chat", run_id=session.run_id)


def test_session_heartbeat_refused_after_terminal(tide: Tidebase) -> None:
    session = tide.runs.attach("hb", heartbeat_s=None)
    session.heartbeat()
    session.complete(None)
    with pytest.raises(SessionClosed):
        session.heartbeat()
    with pytest.raises(SessionClosed):
        session.complete(None)


def test_a_held_session_locks_others_out_and_a_context_manager_fails_on_error(
    tide: Tidebase,
) -> None:
    session = tide.runs.attach("locked")
    other = Tidebase(tide.settings.database_url, schema=tide.settings.schema).open()
    try:
        with pytest.raises(RunLocked):
            other.runs.attach("locked", run_id=session.run_id)
    finally:
        other.close()
    session.close()

    def use_session() -> str:
        with tide.runs.attach("cm") as cm:
            cm.step("one", lambda: 1)
            raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        use_session()
    [run] = tide.runs.list(workflow="cm")
    assert run.status == "failed" and run.error["message"] == "bad"


def test_nonblocking_gates_begin_is_idempotent_and_rejoins_the_decision(tide: Tidebase) -> None:
    session = tide.runs.attach("gated", heartbeat_s=None)
    gate = session.gates.begin("approve:xyz", "Approve?", data={"x": 1})
    assert (gate.name, gate.status, gate.data) == ("approve:xyz", "pending", {"x": 1})
    assert tide.runs.get(session.run_id).status == "waiting"
    assert session.gates.begin("approve:xyz", "Approve?").status == "pending"  # no second gate
    tide.gates.resolve(session.run_id, "approve:xyz", "approved", actor="pytest", token=gate.token)
    rejoined = session.gates.begin("approve:xyz", "Approve?", data={"x": 1})
    assert (rejoined.status, rejoined.actor) == ("approved", "pytest")
    assert session.gates.get(rejoined.name).status == "approved"
    assert tide.runs.get(session.run_id).status == "running"  # its holder is alive
    session.complete(None)


def test_gates_get_of_a_cancelled_run_raises(tide: Tidebase) -> None:
    from tidebase.errors import RunCancelled

    session = tide.runs.attach("gated-cancel")
    session.gates.begin("g", "Go?")
    tide.runs.cancel(session.run_id, reason="stop")
    with pytest.raises(RunCancelled):
        session.gates.get("g")
    session.close()


def test_snapshots_are_labeled_state_versions(tide: Tidebase) -> None:
    def wf(run: RunContext, input: Any) -> list[Any]:
        run.state.set({"phase": "draft"})
        run.snapshots.create("draft")
        run.state.patch({"phase": "final"})
        run.snapshots.create("final")
        return [(v.labels, v.value) for v in run.snapshots.list()]

    assert tide.run("snap", wf, run_id="snap-1") == [
        (["draft"], {"phase": "draft"}),
        (["final"], {"phase": "final"}),
    ]


def test_child_in_both_argument_orders_and_fanout_dicts(tide: Tidebase) -> None:
    seen: list[str] = []

    def child_wf(run: RunContext, input: Any) -> str:
        seen.append(run.workflow_name)
        return f"child:{input}"

    def parent(run: RunContext, input: Any) -> Any:
        a = run.child("summarize", child_wf, input="a")  # this project's form
        b = run.child("summarize", child_wf, name="second", input="b")  # the SDK's form
        c = run.fanout(
            "gather",
            [
                {"name": "left", "workflow": child_wf, "input": "L"},
                {"name": "right", "workflow": child_wf, "input": "R", "workflow_name": "rwf"},
                ("tuple", child_wf, "T"),
            ],
        )
        return [a, b, c]

    assert tide.run("parent", parent, run_id="p1") == [
        "child:a",
        "child:b",
        ["child:L", "child:R", "child:T"],
    ]
    children = {r.run_id: r.workflow_name for r in tide.runs.children("p1")}
    assert children == {
        "p1/summarize": "summarize",
        "p1/second": "summarize",
        "p1/gather/left": "left",
        "p1/gather/right": "rwf",
        "p1/gather/tuple": "tuple",
    }
    assert tide.run("parent", parent, run_id="p1")[2] == ["child:L", "child:R", "child:T"]
    assert len(seen) == 5  # the resumed parent reused its children
    with pytest.raises(TypeError, match="tuple or a dict"):
        tide.run("bad-fanout", lambda run, _: run.fanout("f", [{"name": "x"}]))


def test_runs_create_then_recover_hands_a_run_to_a_worker(tide: Tidebase) -> None:
    @tide.workflow("recoverable")
    def recoverable(run: RunContext, input: dict[str, int]) -> int:
        if run.attempt == 1:
            raise RuntimeError("first try fails")
        return input["n"]

    created = tide.runs.create("recoverable", input={"n": 7}, run_id="rec-1")
    assert created.status == "pending"
    with pytest.raises(RuntimeError):
        tide.run("recoverable", run_id="rec-1")  # fn from the registry
    assert tide.runs.get("rec-1").status == "failed"
    assert tide.runs.recover("rec-1", reason="retry button").status == "pending"
    stop = threading.Event()
    worker = threading.Thread(target=tide.work, kwargs={"stop": stop, "poll_s": 0.02})
    worker.start()
    try:  # a worker that has the workflow registered re-invokes the idle plain run
        wait_for(lambda: tide.runs.get("rec-1").status == "completed")
    finally:
        stop.set()
        worker.join(30)
    assert tide.runs.get("rec-1").result == 7
    types = [e.type for e in tide.runs.events("rec-1")]
    assert "run.recovering" in types


def test_recover_refuses_a_run_a_live_worker_holds(tide: Tidebase) -> None:
    session = tide.runs.attach("held")
    with pytest.raises(RunLocked):
        tide.runs.recover(session.run_id)
    session.close()
