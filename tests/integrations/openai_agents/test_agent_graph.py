"""Handoffs and agents used as tools: every agent reachable from the one run is durable."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from agents import Agent, UserError, function_tool, handoff
from tidebase_openai_agents import durable_agent, is_durable_agent, run_agent

from tidebase.aio import AsyncRunContext, AsyncTidebase

from .scripted import Scripted, call, message
from .test_replay import crash_once, first_and_resumed


def cyclic_desk(ran: Counter[str]) -> Agent[Any]:
    """front hands off to back through a ``Handoff`` object; back can hand back to front."""
    front: Agent[Any] = Agent(
        name="front",
        model=Scripted(
            "front", {0: [call("transfer_to_back", {}, "call_h1")]}, lambda n: ran.update([n])
        ),
    )
    back: Agent[Any] = Agent(
        name="back",
        model=Scripted("back", {1: [message("handled at the back")]}, lambda n: ran.update([n])),
        handoffs=[front],
    )
    front.handoffs = [handoff(back, on_handoff=lambda ctx: ran.update(["on_handoff"]))]
    return front


async def test_a_handoff_cycle_is_copied_once_and_its_target_runs_durably(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    front = cyclic_desk(ran)

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await run_agent(front, "help")
        back = result.last_agent
        assert is_durable_agent(back) and back.name == "back"
        assert is_durable_agent(back.handoffs[0]), "the cycle leads back to a durable copy"
        return crash_once(run, result.final_output)

    first, resumed = await first_and_resumed(atide, "oai-cycle", workflow)
    assert first == resumed == "handled at the back"
    # The user's on_handoff callback is the SDK's to call: it runs again on replay.
    assert ran == {"front": 1, "back": 1, "on_handoff": 2}


def research_desk(ran: Counter[str], *, parallel: int = 2, fail_once: bool = False) -> Agent[Any]:
    """An orchestrator calling a researcher agent as a tool (``parallel`` times at once)."""

    @function_tool(failure_error_function=None)
    async def search(topic: str) -> str:
        """Search."""
        ran[f"search {topic}"] += 1
        if fail_once and topic == "tides" and ran["search tides"] == 1:
            raise ConnectionError("search backend restarted")
        return f"3 papers on {topic}"

    researcher: Agent[Any] = Agent(
        name="researcher",
        model=Scripted(
            "researcher",
            {0: [call("search", {"topic": "tides"}, "call_s")], 1: [message("3 papers found")]},
            lambda n: ran.update([n]),
        ),
        tools=[search],
    )
    return Agent(
        name="orchestrator",
        model=Scripted(
            "orchestrator",
            {
                0: [
                    call("research", {"input": "tides"}, f"call_r{n}")
                    for n in range(1, parallel + 1)
                ],
                parallel: [message("researched")],
            },
            lambda n: ran.update([n]),
        ),
        tools=[
            durable_agent(researcher).as_tool(
                "research", "Research a topic.", failure_error_function=None
            )
        ],
    )


async def test_an_agent_used_as_a_tool_is_one_step_whose_own_calls_are_steps_too(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    orchestrator = research_desk(ran)

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return crash_once(run, (await run_agent(orchestrator, "go")).final_output)

    first, resumed = await first_and_resumed(atide, "oai-agent-tool", workflow)
    assert first == resumed == "researched"
    assert ran == {"orchestrator": 2, "researcher": 4, "search tides": 2}
    names = [s.name for s in await atide.runs.steps("oai-agent-tool")]
    for parallel_call in ("call_r1", "call_r2"):
        # The agent-as-tool's own calls are keyed under its tool call (its runner's scope).
        assert f"orchestrator.run/tool.research.{parallel_call}/model.request#2" in names
        assert f"orchestrator.run/tool.research.{parallel_call}/tool.search.call_s" in names


async def test_a_resume_inside_an_agent_tool_replays_the_nested_calls_that_completed(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    orchestrator = research_desk(ran, parallel=1, fail_once=True)

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return (await run_agent(orchestrator, "go")).final_output

    with pytest.raises(UserError, match="search backend restarted"):
        await atide.run("desk", workflow, run_id="oai-nested")
    assert ran == {"orchestrator": 1, "researcher": 1, "search tides": 1}
    assert await atide.run("desk", workflow, run_id="oai-nested") == "researched"
    # Not again: the orchestrator's first call, the researcher's first call (inside the tool).
    assert ran == {"orchestrator": 2, "researcher": 2, "search tides": 2}


def test_an_agent_tool_over_a_plain_agent_is_named_in_a_warning_with_the_fix() -> None:
    plain: Agent[Any] = Agent(name="helper", model=Scripted("helper", {}, lambda _: None))
    boss: Agent[Any] = Agent(name="boss", tools=[plain.as_tool("helper", "Helps.")])
    with pytest.warns(UserWarning, match=r"durable_agent\(helper\)\.as_tool"):
        durable_agent(boss)
