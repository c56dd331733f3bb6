"""Beyond function tools: a toolset discovered at run time (the MCP-style dynamic toolset) and
the capability's event-stream handler are steps too, and replay without executing."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.toolsets import AbstractToolset, DynamicToolset, FunctionToolset
from tidebase_pydantic_ai import TidebaseDurability

from tidebase.aio import AsyncRunContext, AsyncTidebase

from .scripted import counting, keys_of, scripted_model

LOOKUP_THEN_ANSWER = [
    ModelResponse(parts=[ToolCallPart("lookup", {"service": "billing"})]),
    ModelResponse(parts=[TextPart("looked up")]),
]


async def test_a_dynamic_toolset_replays_its_discovery_and_its_calls(atide: AsyncTidebase) -> None:
    ran: Counter[str] = Counter()

    def lookup(service: str) -> str:
        ran["lookup"] += 1
        return f"{service}: degraded"

    def discover(ctx: RunContext[None]) -> AbstractToolset[None]:
        ran["discover"] += 1
        return FunctionToolset([lookup])

    agent = Agent(
        scripted_model(counting(ran), LOOKUP_THEN_ANSWER),
        name="catalog",
        toolsets=[DynamicToolset(discover, id="services")],
        capabilities=[TidebaseDurability()],
    )

    async def workflow(run: AsyncRunContext, input: None) -> str:
        output = (await agent.run("billing?")).output
        if run.attempt == 1:
            raise RuntimeError("crash after the agent finished")
        return output

    ran_first: Counter[str] = Counter()
    try:
        await atide.run("wf", workflow, run_id="pai-dynamic")
    except RuntimeError:
        ran_first.update(ran)
    assert await atide.run("wf", workflow, run_id="pai-dynamic") == "looked up | billing: degraded"
    assert ran == ran_first and ran["lookup"] == 1 and ran["model"] == 2
    names = keys_of([s.name for s in await atide.runs.steps("pai-dynamic")])
    assert "catalog__run/catalog__dynamic_toolset__services.get_tools" in names
    assert "catalog__run/catalog__dynamic_toolset__services.call_tool:lookup.<id>" in names


async def test_a_toolset_added_after_the_agent_was_built_is_refused_naming_the_durable_form(
    atide: AsyncTidebase,
) -> None:
    """``@agent.toolset`` registers a toolset after construction, which the durable builder
    cannot wrap: its tools would run un-checkpointed. Refused (not silently run), with the fix:
    ``DynamicToolset(func, id=...)`` given to ``Agent(toolsets=[...])``, tested above."""
    agent = Agent(
        scripted_model(counting(Counter()), LOOKUP_THEN_ANSWER),
        name="late",
        capabilities=[TidebaseDurability()],
    )

    @agent.toolset(id="services")
    def services(ctx: RunContext[None]) -> AbstractToolset[None]:
        return FunctionToolset([])

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return (await agent.run("billing?")).output

    with pytest.raises(UserError, match=r"Pass them to the agent constructor"):
        await atide.run("wf", workflow, run_id="pai-late-toolset")


async def test_the_capability_event_handler_runs_once_per_event(atide: AsyncTidebase) -> None:
    ran: Counter[str] = Counter()
    handled: list[str] = []

    async def on_events(ctx: RunContext[Any], events: Any) -> None:
        async for event in events:
            handled.append(type(event).__name__)

    agent = Agent(
        scripted_model(counting(ran), LOOKUP_THEN_ANSWER),
        name="events",
        capabilities=[TidebaseDurability(event_stream_handler=on_events)],
    )

    @agent.tool_plain
    def lookup(service: str) -> str:
        return f"{service}: degraded"

    async def workflow(run: AsyncRunContext, input: None) -> str:
        output = (await agent.run("billing?")).output
        if run.attempt == 1:
            raise RuntimeError("crash after the agent finished")
        return output

    try:
        await atide.run("wf", workflow, run_id="pai-events")
    except RuntimeError:
        first = list(handled)
    assert "FunctionToolCallEvent" in first and "FunctionToolResultEvent" in first
    await atide.run("wf", workflow, run_id="pai-events")
    assert handled == first, "the resumed run delivered recorded events to the handler again"
    names = keys_of([s.name for s in await atide.runs.steps("pai-events")])
    assert names == [
        "events__run/events__model.request_stream",  # the handler makes the run stream
        "events__run/events__event_stream_handler",  # the tool call event
        "events__run/events__function_toolset__<agent>.call_tool:lookup.<id>",
        "events__run/events__event_stream_handler#2",  # the tool result event
        "events__run/events__model.request_stream#2",
    ]
