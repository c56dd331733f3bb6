"""``turn_config``: resuming one turn of a LangGraph thread that has a checkpointer.

A LangGraph checkpointer saves the thread's state after each super-step. A turn that crashed
midway has left its completed super-steps there. Sending the user's message again on resume
would add it a second time on top of that partial state and start a new turn (a duplicated
message, a tool call left without its answer). ``turn_config`` records, as the run's first
step, the thread's checkpoint as of the turn's start, and on resume gives the config that
starts the turn there again: the graph re-executes the turn, Tidebase replays each model and
tool call it completed, and the thread ends as an uncrashed turn would have.
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig

from tidebase_core.plugin import AnyRunContext

__all__ = ["aturn_config", "turn_config"]


def turn_config(run: AnyRunContext, graph: Any, config: RunnableConfig) -> RunnableConfig:
    """The config to ``graph.invoke(user_input, ...)`` one turn of ``config``'s thread with.

    Call it once per turn, in a run of its own (``run_id=f"{thread_id}:{turn}"``), from a
    sync workflow (``graph`` is a compiled LangGraph graph with a checkpointer; for an async
    one use ``await aturn_config(...)``).
    """
    from tidebase_core._sync.context import RunContext

    assert isinstance(run, RunContext), "turn_config needs a sync run: use aturn_config"
    start = run.step("langgraph.turn-start", lambda: _checkpoint_id(graph.get_state(config)))
    return _resumed(graph, config, start, _checkpoint_id(graph.get_state(config)))


async def aturn_config(run: AnyRunContext, graph: Any, config: RunnableConfig) -> RunnableConfig:
    """``turn_config`` for an async workflow."""
    from tidebase_core._async.context import AsyncRunContext

    assert isinstance(run, AsyncRunContext), "aturn_config needs an async run: use turn_config"

    async def now() -> str | None:
        return _checkpoint_id(await graph.aget_state(config))

    start = await run.step("langgraph.turn-start", now)
    latest = await now()
    if latest != start and start is None:
        await graph.checkpointer.adelete_thread(_thread_id(config))
        return config
    return _resumed(graph, config, start, latest)


def _resumed(
    graph: Any, config: RunnableConfig, start: str | None, latest: str | None
) -> RunnableConfig:
    if latest == start:  # the turn's first attempt, or it crashed before its first super-step
        return config
    if start is None:
        # The thread's first turn: all its state is the crashed attempt's partial state.
        graph.checkpointer.delete_thread(_thread_id(config))
        return config
    # Fork from the turn's start: the crashed attempt's super-steps stay in the history,
    # off the thread's current branch.
    return {**config, "configurable": {**config.get("configurable", {}), "checkpoint_id": start}}


def _checkpoint_id(snapshot: Any) -> str | None:
    value = snapshot.config.get("configurable", {}).get("checkpoint_id")
    return value if isinstance(value, str) else None


def _thread_id(config: RunnableConfig) -> str:
    return str(config.get("configurable", {})["thread_id"])
