"""The docs' recipe for a LangGraph conversation: one Tidebase run per turn of a thread, with
a LangGraph checkpointer keeping the thread's state between turns.

A turn that crashed midway has left its partial state in the checkpointer (the super-steps it
completed). Resuming the turn by sending the user's message again would append it a second
time on top of that partial state and start the turn over (16–17 messages instead of 12, and
a tool call with no answer, which a provider refuses). The recipe starts the resumed turn from
the thread's checkpoint as of the turn's start, recorded by the run's first step: the graph
re-executes the same turn, Tidebase replays every call it completed, and the thread ends
exactly as an uncrashed turn would.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import BaseMessage
from langchain_core.tools import tool
from tidebase_langchain import TidebaseMiddleware, aturn_config, turn_config

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase

from .conftest import Executions
from .scripted import ScriptedChatModel, research_tools

pytest.importorskip("langchain.agents", reason="create_agent needs the langchain package")
pytest.importorskip("langgraph.checkpoint.memory")

from langchain.agents import create_agent
from langgraph.checkpoint.memory import InMemorySaver


class Crash(Exception):
    """The process dying inside the save tool."""


def agent_with_memory(executions: Executions, crash_in_turn: int | None) -> Any:
    search, _ = research_tools(executions.record)
    saves = {"n": 0}

    @tool
    def save(note: str) -> str:
        """Save a note."""
        executions.record("save")
        saves["n"] += 1
        if saves["n"] == crash_in_turn:  # the first attempt of that turn's save
            raise Crash
        return f"saved {note!r}"

    return create_agent(
        ScriptedChatModel(record=executions.record),
        [search, save],
        middleware=[TidebaseMiddleware()],
        checkpointer=InMemorySaver(),
    )


def take_turn(run: RunContext, graph: Any, thread_id: str, question: str) -> list[BaseMessage]:
    """The recipe: one Tidebase run per turn (``run_id=f"{thread_id}:{turn}"``)."""
    config = turn_config(run, graph, {"configurable": {"thread_id": thread_id}})
    result = graph.invoke({"messages": [{"role": "user", "content": question}]}, config)
    messages: list[BaseMessage] = result["messages"]
    return messages


def conversation(tide: Tidebase, graph: Any, thread_id: str) -> list[list[Any]]:
    """Two turns; a turn that crashes is resumed (invoked again with the same run id)."""
    for turn, question in enumerate(["tides", "waves"], start=1):

        def workflow(run: RunContext, q: str) -> int:
            return len(take_turn(run, graph, thread_id, q))

        try:
            tide.run("turn", workflow, run_id=f"{thread_id}:{turn}", input=question)
        except Crash:
            tide.run("turn", workflow, run_id=f"{thread_id}:{turn}", input=question)
    messages = graph.get_state({"configurable": {"thread_id": thread_id}}).values["messages"]
    return [
        [m.type, m.content, getattr(m, "tool_call_id", None), [c["id"] for c in m.tool_calls]]
        if m.type == "ai"
        else [m.type, m.content, getattr(m, "tool_call_id", None), []]
        for m in messages
    ]


@pytest.mark.parametrize("crash_in_turn", [1, 2])
def test_a_resumed_turn_ends_the_thread_as_an_uncrashed_one(
    tide: Tidebase, executions: Executions, crash_in_turn: int
) -> None:
    expected = conversation(tide, agent_with_memory(Executions(), None), "calm")
    assert len(expected) == 12

    crashed = conversation(tide, agent_with_memory(executions, crash_in_turn), "stormy")

    assert crashed == expected
    # Each turn: 3 model calls and 1 search, executed once; the crashed save ran again.
    assert executions == {"model": 6, "search": 2, "save": 3}
    assert len(tide.usage.records(f"stormy:{crash_in_turn}")) == 3


@pytest.mark.parametrize("crash_in_turn", [1, 2])
async def test_an_async_turn_resumes_the_same_way(
    atide: AsyncTidebase, executions: Executions, crash_in_turn: int
) -> None:
    graph = agent_with_memory(executions, crash_in_turn)
    thread: Any = {"configurable": {"thread_id": "async"}}

    async def workflow(run: AsyncRunContext, question: str) -> int:
        config = await aturn_config(run, graph, thread)
        result = await graph.ainvoke({"messages": [{"role": "user", "content": question}]}, config)
        return len(result["messages"])

    for turn, question in enumerate(["tides", "waves"], start=1):
        run_id = f"async:{turn}"
        if turn == crash_in_turn:
            with pytest.raises(Crash):
                await atide.run("turn", workflow, run_id=run_id, input=question)
        assert await atide.run("turn", workflow, run_id=run_id, input=question) == 6 * turn
    assert executions == {"model": 6, "search": 2, "save": 3}
