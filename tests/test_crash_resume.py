"""Guarantee 1: a completed step never re-executes on resume, across process death (SIGKILL)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tidebase import Tidebase

from .conftest import executions

pytestmark = pytest.mark.slow

EXPECTED = ["step1 done", "step2 done", "step3 done", "step4 done"]


def test_killed_inside_step3_resumes_without_rerunning_steps_1_and_2(
    spawn, tide: Tidebase, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    crashed = spawn("crash-1", log, BLOCK_AT="step3")
    crashed.expect("IN step3")
    crashed.kill()
    assert executions(log) == {"step1": 1, "step2": 1, "step3": 1}
    assert [s.name for s in tide.runs.steps("crash-1")] == ["step1", "step2"]

    # The lease (60 s) still names the dead process; on the same host it is void at once.
    started = time.monotonic()
    resumed = spawn("crash-1", log)
    line = resumed.finish()
    assert time.monotonic() - started < 30, "the resume waited out the dead worker's lease"

    assert json.loads(line.removeprefix("RESULT ")) == EXPECTED
    assert executions(log) == {"step1": 1, "step2": 1, "step3": 2, "step4": 1}
    run = tide.runs.get("crash-1")
    assert run.status == "completed" and run.attempt == 2
    assert {s.name: s.attempt for s in tide.runs.steps("crash-1")} == {
        "step1": 1,
        "step2": 1,
        "step3": 2,
        "step4": 2,
    }


def test_a_killed_worker_is_resumed_by_another_process_and_by_this_one(
    spawn, tide: Tidebase, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    crashed = spawn("crash-2", log, BLOCK_AT="step2")
    crashed.expect("IN step2")
    crashed.kill()

    ran: list[str] = []

    def steps(run, input):  # the same workflow, resumed in the test process itself
        out = []
        for i in range(1, 5):
            out.append(
                run.step(
                    f"step{i}",
                    lambda i=i: ran.append(f"step{i}") or f"step{i} done",
                    input={"i": i},
                )
            )
        return out

    assert tide.run("steps", steps, run_id="crash-2") == EXPECTED
    assert ran == ["step2", "step3", "step4"]
    # and once complete, nothing runs again anywhere
    assert tide.run("steps", steps, run_id="crash-2") == EXPECTED
    assert ran == ["step2", "step3", "step4"]
