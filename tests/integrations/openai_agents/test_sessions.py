"""A ``session=`` memory: a resumed run sees the history its first attempt saw, and the
store holds one copy of the conversation."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from agents import Agent, SQLiteSession
from tidebase_openai_agents import run_agent

from tidebase.aio import AsyncRunContext, AsyncTidebase

from .scripted import Scripted, message
from .test_replay import crash_once, first_and_resumed


async def test_a_resumed_run_with_session_memory_replays_and_writes_the_history_once(
    atide: AsyncTidebase, tmp_path: Path
) -> None:
    ran: Counter[str] = Counter()
    agent: Agent[Any] = Agent(
        name="chat", model=Scripted("chat", {0: [message("hi bob")]}, lambda n: ran.update([n]))
    )
    memory = SQLiteSession("conversation-1", tmp_path / "memory.db")

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await run_agent(agent, "I am bob", session=memory)
        return crash_once(run, result.final_output)

    first, resumed = await first_and_resumed(atide, "oai-session", workflow)
    assert first == resumed == "hi bob"
    assert ran == {"chat": 1}
    history = await memory.get_items()
    assert [(i.get("role"), i.get("type")) for i in history] == [
        ("user", None),
        ("assistant", "message"),
    ], "the first attempt's writes were not repeated"
