"""The plugin's surface: sync workflows, outside a run, and clear errors for bad input."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from agents import RunConfig
from tidebase_openai_agents import (
    DurableModel,
    TidebaseHooks,
    durable_run_config,
    durable_tool,
    run_agent,
)

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase

from .scripted import Shop, support_agents
from .test_replay import Crash, crash_once

ANSWER = "Refunded 30 EUR for order A1 (R-1)."


def test_a_sync_workflow_driving_the_sdk_replays_it_too(tide: Tidebase) -> None:
    ran: Counter[str] = Counter()
    triage = support_agents(lambda name: ran.update([name]))

    def workflow(run: RunContext, input: None) -> str:
        result = asyncio.run(run_agent(run, triage, "Refund order A1", context=Shop()))
        return crash_once(run, result.final_output)

    with pytest.raises(Crash):
        tide.run("support", workflow, run_id="oai-sync")
    assert tide.run("support", workflow, run_id="oai-sync") == ANSWER
    assert ran == {"triage": 2, "refunds": 2, "lookup_order": 1, "issue_refund": 1}
    assert len(tide.usage.records("oai-sync")) == 4


async def test_outside_a_run_the_sdk_runs_as_it_would_without_tidebase() -> None:
    ran: Counter[str] = Counter()
    result = await run_agent(support_agents(lambda n: ran.update([n])), "Refund A1", context=Shop())
    assert result.final_output == ANSWER
    assert ran == {"triage": 2, "refunds": 2, "lookup_order": 1, "issue_refund": 1}


async def test_bad_input_is_refused_with_the_fix(atide: AsyncTidebase) -> None:
    triage = support_agents(lambda _: None)
    with pytest.raises(TypeError, match=r"\(run, agent, input\) or \(agent, input\)"):
        await run_agent("triage", "Refund A1")
    with pytest.raises(ValueError, match="approvals"):
        await run_agent(triage, "Refund A1", approvals="ask")
    with pytest.raises(TypeError, match="above it"):
        durable_tool(lambda: "not a tool")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="durable_run_config"):
        DurableModel("gpt-4.1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"agents\.RunConfig"):
        durable_run_config(base=42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RunHooks"):
        TidebaseHooks(inner=object())  # type: ignore[arg-type]

    kept: list[AsyncRunContext] = []

    async def elsewhere(run: AsyncRunContext, input: None) -> None:
        kept.append(run)

    await atide.run("other", elsewhere, run_id="oai-other")
    [other] = kept
    with pytest.raises(ValueError, match="not the run active here"):
        await run_agent(other, triage, "Refund A1")


def test_durable_run_config_keeps_the_users_provider_and_settings() -> None:
    base = RunConfig(workflow_name="refunds", tracing_disabled=True)
    config = durable_run_config(base=base)
    assert config.model_provider.inner is base.model_provider  # type: ignore[attr-defined]
    assert (config.workflow_name, config.tracing_disabled) == ("refunds", True)
    assert durable_run_config(base=config).model_provider is config.model_provider
