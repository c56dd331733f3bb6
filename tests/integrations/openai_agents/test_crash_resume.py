"""A worker killed (SIGKILL) in the middle of an agent run resumes where it died.

The worker runs triage -> refunds (four model calls, two tools) in a real subprocess; the log
counts every real model call and tool body, whichever process made it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tidebase_openai_agents import run_agent

from tidebase import RunContext, Tidebase

from ...conftest import executions
from .scripted import Shop, support_agents

pytestmark = pytest.mark.slow

WORKER = "tests.integrations.openai_agents.worker"
ANSWER = "Refunded 30 EUR for order A1 (R-1)."


def uncrashed_answer(tide: Tidebase) -> str:
    """The same agents, run without a crash (here, in the test process)."""

    def support(run: RunContext, input: str) -> str:
        agents = support_agents(lambda _: None)
        result = asyncio.run(run_agent(run, agents, input, context=Shop()))
        return str(result.final_output)

    return str(tide.run("support", support, run_id="oai-uncrashed", input="Refund A1"))


def test_killed_at_the_second_model_call_resumes_with_only_that_call_and_what_follows(
    spawn, tide: Tidebase, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    crashed = spawn("oai-crash", log, WORKER, BLOCK_AT_MODEL="2")
    crashed.expect("IN model 2")
    crashed.kill()
    assert executions(log) == {"triage": 2, "lookup_order": 1}
    assert [s.name for s in tide.runs.steps("oai-crash")] == [
        "triage.run/model.request",
        "triage.run/tool.lookup_order.call_lookup",
    ]

    resumed = spawn("oai-crash", log, WORKER)
    assert json.loads(resumed.finish().removeprefix("RESULT ")) == ANSWER

    # Resumed: the second triage call again (it never completed), then the rest once.
    assert executions(log) == {"triage": 3, "lookup_order": 1, "refunds": 2, "issue_refund": 1}
    assert tide.runs.get("oai-crash").result == uncrashed_answer(tide) == ANSWER
    assert tide.runs.get("oai-crash").attempt == 2
    # The ledger: one row per completed model call, each tagged with the attempt that paid.
    rows = [(r.step_name, r.attempt, r.input_tokens) for r in tide.usage.records("oai-crash")]
    assert sorted(rows) == [
        ("triage.run/model.request", 1, 100),
        ("triage.run/model.request#2", 2, 101),
        ("triage.run/model.request#3", 2, 102),
        ("triage.run/model.request#4", 2, 103),
    ]


def test_a_stream_killed_half_way_is_no_checkpoint_and_streams_again_on_resume(
    spawn, tide: Tidebase, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    crashed = spawn("oai-stream-crash", log, WORKER, STREAM="1", BLOCK_IN_STREAM="EUR")
    crashed.expect("IN stream")  # inside the last model call, "Refunded 30 " streamed so far
    crashed.kill()
    assert executions(log) == {"triage": 2, "refunds": 2, "lookup_order": 1, "issue_refund": 1}
    assert "triage.run/model.request#4" not in [s.name for s in tide.runs.steps("oai-stream-crash")]
    assert "triage.run/model.request#3" in [s.name for s in tide.runs.steps("oai-stream-crash")]

    resumed = spawn("oai-stream-crash", log, WORKER, STREAM="1")
    assert json.loads(resumed.finish().removeprefix("RESULT ")) == ANSWER
    assert executions(log) == {"triage": 2, "refunds": 3, "lookup_order": 1, "issue_refund": 1}
