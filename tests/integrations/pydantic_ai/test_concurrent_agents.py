"""Two agent runs gathered in one workflow: each replays its own model requests and tools."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from tidebase_pydantic_ai import TidebaseDurability

from tidebase.aio import AsyncRunContext, AsyncTidebase

from .scripted import Deps, counting, triage_agent


class Crash(Exception):
    pass


async def test_gathered_agent_runs_in_named_branches_replay_their_own_work(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    agent = triage_agent(counting(ran))

    async def triage(run: AsyncRunContext, who: str) -> str:
        with run.branch(f"ticket-{who}"):
            return (await agent.run(f"{who} is down", deps=Deps(run=run))).output

    async def workflow(run: AsyncRunContext, input: None) -> list[str]:
        outputs = await asyncio.gather(triage(run, "billing"), triage(run, "search"))
        if run.attempt == 1:
            raise Crash
        return list(outputs)

    with pytest.raises(Crash):
        await atide.run("wf", workflow, run_id="two-agents")
    first = dict(ran)
    resumed = await atide.run("wf", workflow, run_id="two-agents")
    assert ran == first == {"model": 6, "search_logs": 2, "file_ticket": 2}, "work ran again"
    assert len(resumed) == 2
    keys = [s.name for s in await atide.runs.steps("two-agents")]
    assert sum(k.startswith("#ticket-billing/") for k in keys) == 5
    assert sum(k.startswith("#ticket-search/") for k in keys) == 5


def echo_model(ran: Counter[str]) -> FunctionModel:
    """Asks ``lookup`` about the prompt's first word, then answers with what it returned."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        ran["model"] += 1
        prompt = next(
            str(p.content) for m in messages for p in m.parts if isinstance(p, UserPromptPart)
        )
        returned = [
            str(p.content) for m in messages for p in m.parts if isinstance(p, ToolReturnPart)
        ]
        if not returned:
            return ModelResponse(parts=[ToolCallPart("lookup", {"service": prompt.split()[0]})])
        return ModelResponse(parts=[TextPart(f"{prompt} -> {returned[0]}")])

    return FunctionModel(respond)


async def test_gathered_agent_runs_without_branches_replay_their_own_work(
    atide: AsyncTidebase,
) -> None:
    """No ``run.branch`` needed: each agent run keys its operations under its own key, taken
    in program order when it starts, so interleaved runs never see each other's checkpoints."""
    ran: Counter[str] = Counter()
    agent = Agent(echo_model(ran), name="triage", capabilities=[TidebaseDurability()])

    @agent.tool_plain
    async def lookup(service: str) -> str:
        ran[service] += 1
        await asyncio.sleep(0.05 if service == "billing" else 0.01)  # they finish out of order
        return f"{service}: {len(service)} errors"

    async def workflow(run: AsyncRunContext, input: None) -> list[str]:
        results = await asyncio.gather(agent.run("billing is down"), agent.run("search is down"))
        if run.attempt == 1:
            raise Crash
        return [r.output for r in results]

    with pytest.raises(Crash):
        await atide.run("wf", workflow, run_id="two-agents-unnamed")
    first = dict(ran)
    resumed = await atide.run("wf", workflow, run_id="two-agents-unnamed")
    assert resumed == [
        "billing is down -> billing: 7 errors",
        "search is down -> search: 6 errors",
    ]
    assert ran == first == {"model": 4, "billing": 1, "search": 1}, "work ran again"
    keys = [s.name for s in await atide.runs.steps("two-agents-unnamed")]
    assert sum(k.startswith("triage__run/") for k in keys) == 3
    assert sum(k.startswith("triage__run#2/") for k in keys) == 3
