"""Guarantee 9: cancellation is one-way and observed at the next step boundary."""

from __future__ import annotations

import threading

import pytest

from tidebase import RunContext, Tidebase
from tidebase.errors import RunCancelled


def test_a_cancelled_run_stops_at_its_next_step_and_refuses_the_in_flight_checkpoint(
    tide: Tidebase,
) -> None:
    inside = threading.Event()
    finish = threading.Event()
    ran: list[str] = []
    outcome: list[BaseException] = []

    def slow() -> str:
        ran.append("slow")
        inside.set()
        finish.wait(30)
        return "slow done"

    def wf(run: RunContext, input: None) -> str:
        run.step("first", lambda: ran.append("first") or 1)
        run.step("slow", slow)
        run.step("after", lambda: ran.append("after") or 2)
        return "done"

    def work() -> None:
        try:
            tide.run("wf", wf, run_id="c1")
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=work)
    t.start()
    assert inside.wait(30)
    info = tide.runs.cancel("c1", reason="user pressed stop", actor="ada")
    assert info.status == "cancelled"
    finish.set()  # the in-flight step finishes; its checkpoint must be refused
    t.join(30)

    assert len(outcome) == 1 and isinstance(outcome[0], RunCancelled)
    assert outcome[0].reason == "user pressed stop"
    assert ran == ["first", "slow"]
    assert [s.name for s in tide.runs.steps("c1")] == ["first"]
    run = tide.runs.get("c1")
    assert run.status == "cancelled" and run.lease_expires_at is None
    cancelled = [e for e in tide.runs.events("c1") if e.type == "run.cancelled"]
    assert cancelled[0].payload == {"reason": "user pressed stop", "actor": "ada"}


def test_the_heartbeat_sees_a_cancel_without_any_read_per_step(tide: Tidebase) -> None:
    """The next step raises before executing; no fenced write is needed to notice."""
    ran: list[int] = []
    heartbeat = tide._heartbeat

    def wf(run: RunContext, input: None) -> None:
        run.step("one", lambda: ran.append(1))
        tide.runs.cancel(run.run_id)
        heartbeat.beat()  # what the heartbeat thread does every lease/3 seconds
        run.step("two", lambda: ran.append(2))

    with pytest.raises(RunCancelled):
        tide.run("wf", wf, run_id="c2")
    assert ran == [1]


def test_cancellation_is_one_way(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> str:
        return run.step("a", lambda: "a")

    tide.runs.cancel(tide.runs.get(_pending(tide)).run_id)
    with pytest.raises(RunCancelled):
        tide.run("wf", wf, run_id="pending")
    with pytest.raises(RunCancelled):  # and stays cancelled
        tide.run("wf", wf, run_id="pending")

    assert tide.run("wf", wf, run_id="done") == "a"
    assert tide.runs.cancel("done").status == "completed"  # too late: completed stays completed
    assert tide.run("wf", wf, run_id="done") == "a"


def test_a_completion_arriving_after_a_cancel_is_refused(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> str:
        run.step("a", lambda: "a")
        tide.runs.cancel(run.run_id)  # arrives after the last step, before completion
        return "finished"

    with pytest.raises(RunCancelled):
        tide.run("wf", wf, run_id="c3")
    run = tide.runs.get("c3")
    assert run.status == "cancelled" and run.result is None


def _pending(tide: Tidebase) -> str:
    """A run that failed once (so it exists and is not running)."""
    with pytest.raises(RuntimeError):
        tide.run("wf", lambda run, input: (_ for _ in ()).throw(RuntimeError()), run_id="pending")
    return "pending"
