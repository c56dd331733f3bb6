"""A worker SIGKILLed inside a tool resumes: the model calls before the crash replay, the
tool and the model call after it run once, and the result equals an uncrashed run's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tidebase import Tidebase

from ...conftest import executions

pytestmark = pytest.mark.slow

WORKER = "tests.integrations.langchain.worker"


@pytest.mark.parametrize("scenario", ["loop", "agent"])
def test_killed_inside_a_tool_resumes_without_repeating_model_calls(
    spawn, tide: Tidebase, tmp_path: Path, scenario: str
) -> None:
    log = tmp_path / "executions.log"
    crashed = spawn("crash", log, module=WORKER, SCENARIO=scenario, BLOCK_AT="save")
    crashed.expect("IN save")
    crashed.kill()
    assert executions(log) == {"model": 2, "search": 1, "save": 1}

    resumed = spawn("crash", log, module=WORKER, SCENARIO=scenario).finish()
    assert executions(log) == {"model": 3, "search": 1, "save": 2}

    clean = spawn("clean", tmp_path / "clean.log", module=WORKER, SCENARIO=scenario).finish()
    assert resumed.startswith("RESULT ") and resumed == clean
    assert json.loads(resumed.removeprefix("RESULT "))[-1][1].startswith("Done. saved")
    assert [r.attempt for r in tide.usage.records("crash")] == [1, 1, 2]
    assert tide.runs.get("crash").attempt == 2


def test_a_sync_stream_killed_half_way_streams_again_and_the_completed_ones_replay(
    spawn, tide: Tidebase, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    crashed = spawn("stream-crash", log, module=WORKER, SCENARIO="stream", BLOCK_AT="mid-stream")
    crashed.expect("IN mid-stream")  # the final answer's stream, its first chunk consumed
    crashed.kill()
    assert executions(log) == {"model": 3, "search": 1, "save": 1, "mid-stream": 1}
    steps = [s.name for s in tide.runs.steps("stream-crash") if s.name.startswith("langchain.m")]
    assert steps == ["langchain.model", "langchain.model#2"], "a half stream is no checkpoint"

    resumed = spawn("stream-crash", log, module=WORKER, SCENARIO="stream").finish()
    # The two completed streams and both tools replay; only the killed stream runs again.
    assert executions(log) == {"model": 4, "search": 1, "save": 1, "mid-stream": 2}

    clean = spawn("clean", tmp_path / "clean.log", module=WORKER, SCENARIO="stream").finish()
    assert resumed.startswith("RESULT ") and resumed == clean
    assert [r.attempt for r in tide.usage.records("stream-crash")] == [1, 1, 2]
