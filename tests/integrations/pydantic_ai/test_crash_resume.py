"""Guarantee 1 for agents: a worker SIGKILLed inside the agent's second tool resumes without
running the first tool or the earlier model requests again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tidebase import Tidebase

from ...conftest import executions

pytestmark = pytest.mark.slow

WORKER = "tests.integrations.pydantic_ai.worker"


def test_killed_inside_the_second_tool_resumes_at_that_tool(
    spawn, tide: Tidebase, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    crashed = spawn("pai-crash", log, module=WORKER, BLOCK_AT="file_ticket")
    crashed.expect("IN file_ticket")
    crashed.kill()
    assert executions(log) == {"model": 2, "search_logs": 1, "file_ticket": 1}

    resumed = spawn("pai-crash", log, module=WORKER).finish()
    assert executions(log) == {"model": 3, "search_logs": 1, "file_ticket": 2}

    uncrashed_log = tmp_path / "uncrashed.log"
    uncrashed = spawn("pai-uncrashed", uncrashed_log, module=WORKER).finish()
    assert json.loads(resumed.removeprefix("RESULT ")) == json.loads(
        uncrashed.removeprefix("RESULT ")
    )
    assert executions(uncrashed_log) == {"model": 3, "search_logs": 1, "file_ticket": 1}

    # The ledger: one row per model request that really ran, the killed attempt's included.
    rows = tide.usage.records("pai-crash")
    assert [(r.step_name, r.attempt) for r in rows] == [
        ("triage__run/triage__model.request", 1),
        ("triage__run/triage__model.request#2", 1),
        ("triage__run/triage__model.request#3", 2),
    ]
