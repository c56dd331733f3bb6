"""``langchain.agents.create_agent`` inside a run: with ``TidebaseMiddleware``, or with the
installed cache and durable tools, a resumed agent executes nothing it already did."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from tidebase_langchain import TidebaseMiddleware, durable_tool, durable_tools

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase

from .conftest import Executions
from .scripted import ScriptedChatModel, research_tools
from .test_models import Interrupted, interrupt_first_attempt

pytest.importorskip("langchain.agents", reason="create_agent needs the langchain package")

from langchain.agents import create_agent

QUESTION = {"messages": [{"role": "user", "content": "tides"}]}
ANSWER = "Done. saved \"found: 3 sources on 'tides'\""


def step_kinds(tide: Tidebase, run_id: str) -> Counter[str]:
    """`langchain.model#2` → `langchain.model`; `langchain.tool.save.c1` → `langchain.tool`."""
    return Counter(".".join(s.name.split("#")[0].split(".")[:2]) for s in tide.runs.steps(run_id))


def test_middleware_replays_the_agents_model_and_tool_calls(
    tide: Tidebase, executions: Executions
) -> None:
    agent = create_agent(
        ScriptedChatModel(record=executions.record),
        research_tools(executions.record),
        middleware=[TidebaseMiddleware()],
    )

    def ask(run: RunContext, _: None) -> str:
        answer = str(agent.invoke(QUESTION)["messages"][-1].content)
        interrupt_first_attempt(run)
        return answer

    with pytest.raises(Interrupted):
        tide.run("agent", ask, run_id="g1")
    assert tide.run("agent", ask, run_id="g1") == ANSWER

    assert executions == {"model": 3, "search": 1, "save": 1}
    # One checkpoint per call although the installed LLM cache also sees the model calls.
    assert step_kinds(tide, "g1") == {"langchain.model": 3, "langchain.tool": 2}
    assert len(tide.usage.records("g1")) == 3


async def test_middleware_async_hooks(atide: AsyncTidebase, executions: Executions) -> None:
    agent = create_agent(
        ScriptedChatModel(record=executions.record),
        research_tools(executions.record),
        middleware=[TidebaseMiddleware()],
    )

    async def ask(run: AsyncRunContext, _: None) -> str:
        answer = str((await agent.ainvoke(QUESTION))["messages"][-1].content)
        interrupt_first_attempt(run)
        return answer

    with pytest.raises(Interrupted):
        await atide.run("agent", ask, run_id="g2")
    assert await atide.run("agent", ask, run_id="g2") == ANSWER
    assert executions == {"model": 3, "search": 1, "save": 1}
    assert len(await atide.usage.records("g2")) == 3
    # LangGraph runs each node in a task of its own, one after another: keyed by order.
    names = [s.name for s in await atide.runs.steps("g2") if s.name.startswith("langchain.model")]
    assert names == ["langchain.model", "langchain.model#2", "langchain.model#3"]


def test_an_agent_without_middleware_is_durable_through_the_cache_and_durable_tools(
    tide: Tidebase, executions: Executions
) -> None:
    agent = create_agent(
        ScriptedChatModel(record=executions.record),
        durable_tools(research_tools(executions.record)),
    )

    def ask(run: RunContext, _: None) -> str:
        answer = str(agent.invoke(QUESTION)["messages"][-1].content)
        interrupt_first_attempt(run)
        return answer

    with pytest.raises(Interrupted):
        tide.run("agent", ask, run_id="g3")
    assert tide.run("agent", ask, run_id="g3") == ANSWER
    assert executions == {"model": 3, "search": 1, "save": 1}
    assert step_kinds(tide, "g3") == {"langchain.model": 3, "langchain.tool": 2}
    assert len(tide.usage.records("g3")) == 3


def test_durable_tools_keep_their_declarations_under_the_middleware(
    tide: Tidebase, executions: Executions
) -> None:
    search, save = research_tools(executions.record)
    agent = create_agent(
        ScriptedChatModel(record=executions.record),
        [search, durable_tool(save, side_effects=["notes"], idempotency_key="save-note")],
        middleware=[TidebaseMiddleware()],
    )

    def ask(run: RunContext, _: None) -> str:
        return str(agent.invoke(QUESTION)["messages"][-1].content)

    assert tide.run("agent", ask, run_id="g4") == ANSWER
    keys = {s.name: s.idempotency_key for s in tide.runs.steps("g4")}
    assert step_kinds(tide, "g4") == {"langchain.model": 3, "langchain.tool": 2}
    assert keys["langchain.tool.save.call_save"] == "save-note"


@pytest.mark.parametrize("middleware", [True, False])
async def test_replayed_model_calls_fire_the_chat_model_callbacks(
    atide: AsyncTidebase, executions: Executions, middleware: bool
) -> None:
    """``astream_events`` over a resumed agent shows every model call, replayed ones too
    (with the middleware, or with ``install()`` and durable tools alone)."""
    tools = research_tools(executions.record)
    agent = create_agent(
        ScriptedChatModel(record=executions.record),
        tools if middleware else durable_tools(tools),
        middleware=[TidebaseMiddleware()] if middleware else [],
    )
    seen: list[list[str]] = []

    async def ask(run: AsyncRunContext, _: None) -> list[str]:
        ends = [
            str(event["data"]["output"].content or event["data"]["output"].tool_calls[0]["name"])
            async for event in agent.astream_events(QUESTION, version="v2")
            if event["event"] == "on_chat_model_end"
        ]
        seen.append(ends)
        interrupt_first_attempt(run)
        return ends

    run_id = f"g5-{middleware}"
    with pytest.raises(Interrupted):
        await atide.run("agent", ask, run_id=run_id)
    await atide.run("agent", ask, run_id=run_id)

    assert executions == {"model": 3, "search": 1, "save": 1}
    assert seen == [["search", "save", ANSWER]] * 2
    # Replayed calls are marked as such for Tidebase's own handler, and cost nothing more.
    assert len(await atide.usage.records(run_id)) == 3


def test_replayed_model_calls_fire_callbacks_in_a_sync_agent(
    tide: Tidebase, executions: Executions
) -> None:
    from langchain_core.callbacks import BaseCallbackHandler

    ends: list[str] = []

    class Ends(BaseCallbackHandler):
        def on_llm_end(self, response: Any, **kwargs: Any) -> None:
            message = response.generations[0][0].message
            ends.append(str(message.content or message.tool_calls[0]["name"]))

    agent = create_agent(
        ScriptedChatModel(record=executions.record),
        research_tools(executions.record),
        middleware=[TidebaseMiddleware()],
    )

    def ask(run: RunContext, _: None) -> str:
        answer = agent.invoke(QUESTION, config={"callbacks": [Ends()]})
        interrupt_first_attempt(run)
        return str(answer["messages"][-1].content)

    with pytest.raises(Interrupted):
        tide.run("agent", ask, run_id="g6")
    assert tide.run("agent", ask, run_id="g6") == ANSWER
    assert executions == {"model": 3, "search": 1, "save": 1}
    assert ends == ["search", "save", ANSWER] * 2


@pytest.mark.parametrize("middleware", [True, False])
def test_usage_by_agent_names_each_create_agent(
    tide: Tidebase, executions: Executions, middleware: bool
) -> None:
    def agent(name: str) -> Any:
        tools = research_tools(executions.record)
        return create_agent(
            ScriptedChatModel(record=executions.record),
            tools if middleware else durable_tools(tools),
            middleware=[TidebaseMiddleware()] if middleware else [],
            name=name,
        )

    researcher, writer = agent("researcher"), agent("writer")
    if "lc_agent_name" not in ((researcher.config or {}).get("metadata") or {}):
        pytest.skip("this langchain release does not name an agent's runs (lc_agent_name)")

    def two_agents(run: RunContext, _: None) -> str:
        researcher.invoke(QUESTION)
        return str(writer.invoke(QUESTION)["messages"][-1].content)

    run_id = f"by-agent-{middleware}"
    assert tide.run("agents", two_agents, run_id=run_id) == ANSWER
    by_agent = {a.agent: a.calls for a in tide.usage.summary(run_id).by_agent}
    assert by_agent == {"researcher": 3, "writer": 3}


async def test_astream_events_of_a_resumed_agent_show_its_replayed_tool_calls(
    atide: AsyncTidebase, executions: Executions
) -> None:
    agent = create_agent(
        ScriptedChatModel(record=executions.record),
        research_tools(executions.record),
        middleware=[TidebaseMiddleware()],
    )
    seen: list[list[tuple[str, str]]] = []

    async def ask(run: AsyncRunContext, _: None) -> None:
        seen.append([])
        async for event in agent.astream_events(QUESTION, version="v2"):
            if event["event"] in ("on_tool_start", "on_tool_end", "on_chat_model_end"):
                seen[-1].append((event["event"], event["name"]))
        interrupt_first_attempt(run)

    with pytest.raises(Interrupted):
        await atide.run("agent", ask, run_id="g-events")
    await atide.run("agent", ask, run_id="g-events")

    live, replayed = seen
    assert live == [
        ("on_chat_model_end", "ScriptedChatModel"),
        ("on_tool_start", "search"),
        ("on_tool_end", "search"),
        ("on_chat_model_end", "ScriptedChatModel"),
        ("on_tool_start", "save"),
        ("on_tool_end", "save"),
        ("on_chat_model_end", "ScriptedChatModel"),
    ]
    assert replayed == live, "a replayed agent's tool calls are traced as its model calls are"
    assert executions == {"model": 3, "search": 1, "save": 1}
