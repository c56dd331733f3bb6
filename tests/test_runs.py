"""Runs: create or resume by id, one workflow per id, stored results, introspection."""

from __future__ import annotations

import pytest

from tidebase import RunContext, RunStatus, Tidebase
from tidebase.errors import InputMismatch, RunNotFound, WorkflowMismatch


def echo(run: RunContext, input: object) -> object:
    return run.step("echo", lambda: input, input=input)


def test_a_run_id_of_another_workflow_is_a_clear_error(tide: Tidebase) -> None:
    tide.run("report", echo, run_id="run_123", input={"x": 1})
    with pytest.raises(WorkflowMismatch, match="belongs to workflow 'report', not 'other'"):
        tide.run("other", echo, run_id="run_123", input={"x": 1})


def test_resuming_with_different_run_input_is_refused(tide: Tidebase) -> None:
    tide.run("report", echo, run_id="r", input={"x": 1})
    with pytest.raises(InputMismatch, match="run 'r' was started with different input"):
        tide.run("report", echo, run_id="r", input={"x": 2})


def test_input_none_resumes_with_the_stored_input(tide: Tidebase) -> None:
    received: list[object] = []

    def wf(run: RunContext, input: object) -> object:
        received.append(input)
        if len(received) == 1:
            raise RuntimeError("crash")
        return input

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="r", input={"topic": "tides"})
    assert tide.run("wf", wf, run_id="r") == {"topic": "tides"}
    assert received == [{"topic": "tides"}, {"topic": "tides"}]


def test_run_info_lists_and_filters(tide: Tidebase) -> None:
    tide.run("a", echo, run_id="r1", input=1, metadata={"user": "ada"})
    tide.run("b", echo, run_id="r2", input=2)
    with pytest.raises(RuntimeError):
        tide.run("a", lambda run, input: (_ for _ in ()).throw(RuntimeError("x")), run_id="r3")

    info = tide.runs.get("r1")
    assert (info.workflow_name, info.status, info.input, info.result) == ("a", "completed", 1, 1)
    assert info.metadata == {"user": "ada"} and info.completed_at is not None
    assert {r.run_id for r in tide.runs.list()} == {"r1", "r2", "r3"}
    assert [r.run_id for r in tide.runs.list(workflow="b")] == ["r2"]
    assert [r.run_id for r in tide.runs.list(status=RunStatus.FAILED)] == ["r3"]
    assert [r.run_id for r in tide.runs.list(status="completed", limit=1)] in (["r1"], ["r2"])
    with pytest.raises(ValueError, match="unknown run status 'done'"):
        tide.runs.list(status="done")


def test_unknown_run_ids_raise_run_not_found(tide: Tidebase) -> None:
    for call in (tide.runs.get, tide.runs.steps, tide.runs.events, tide.runs.cancel):
        with pytest.raises(RunNotFound, match="no run with id 'nope'"):
            call("nope")


def test_the_event_log_is_ordered_and_gap_free_across_attempts(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> str:
        run.step("a", lambda: 1)
        if run.attempt == 1:
            run.step("b", lambda: 1 / 0)
        return run.step("c", lambda: "ok")

    with pytest.raises(Exception, match="division by zero"):
        tide.run("wf", wf, run_id="r")
    tide.run("wf", wf, run_id="r")
    events = tide.runs.events("r")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [(e.type, (e.payload or {}).get("step")) for e in events] == [
        ("run.started", None),
        ("step.completed", "a"),
        ("step.failed", "b"),
        ("run.failed", "b"),
        ("run.started", None),
        ("step.completed", "c"),
        ("run.completed", None),
    ]
    assert [e.seq for e in tide.runs.events("r", after_seq=5)] == [6, 7]
