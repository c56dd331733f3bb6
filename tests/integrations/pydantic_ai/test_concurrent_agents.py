"""Two agent runs gathered in one workflow: each replays its own model requests and tools."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from pydantic_ai import Agent
from tidebase_pydantic_ai import TidebaseDurability

from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import BranchAmbiguous

from .scripted import Deps, counting, scripted_model, triage_agent


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


async def test_gathered_agent_runs_without_branches_are_refused_not_swapped(
    atide: AsyncTidebase,
) -> None:
    agent = Agent(
        scripted_model(counting(Counter())),
        name="triage",
        deps_type=Deps,
        capabilities=[TidebaseDurability()],
    )

    @agent.tool_plain
    async def search_logs(service: str) -> str:
        await asyncio.sleep(0.02)  # real I/O: the two runs interleave
        return f"{service}: 42 errors"

    @agent.tool_plain
    async def file_ticket(title: str) -> str:
        await asyncio.sleep(0.02)
        return f"TICKET-1 {title}"

    async def workflow(run: AsyncRunContext, input: None) -> list[str]:
        results = await asyncio.gather(
            agent.run("billing is down", deps=Deps(run=run)),
            agent.run("search is down", deps=Deps(run=run)),
        )
        return [r.output for r in results]

    with pytest.raises(BranchAmbiguous, match=r"run\.branch"):
        await atide.run("wf", workflow, run_id="two-agents-unnamed")
