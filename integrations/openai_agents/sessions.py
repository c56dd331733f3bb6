"""``DurableSession``: a ``session=`` memory whose reads and writes are steps of the run.

A resumed run must see the history the first attempt saw, not that history plus what the first
attempt added before it died (or every model call after a crash would differ from its
checkpoint). So each ``get_items`` is a step that replays the items it first returned, and each
``add_items`` / ``pop_item`` / ``clear_session`` is a step that changes the store once.
OpenAI's server-side ``OpenAIConversationsSession`` is passed through: the SDK treats it
specially, and the conversation lives on OpenAI's side.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agents import OpenAIConversationsSession
from agents.memory import Session, SessionABC

from tidebase_core.operations import Operation, durable_call
from tidebase_core.plugin import current_run

from .digests import digest_of

__all__ = ["DurableSession", "durable_session"]


class DurableSession(SessionABC):
    def __init__(self, inner: Session) -> None:
        if isinstance(inner, DurableSession) or not callable(getattr(inner, "get_items", None)):
            raise TypeError(
                f"DurableSession wraps an agents session (SQLiteSession, …), got "
                f"{type(inner).__name__}"
            )
        self.inner = inner
        self.session_id = inner.session_id
        self.session_settings = getattr(inner, "session_settings", None)

    async def get_items(self, limit: int | None = None) -> list[Any]:
        items = await self._step("get_items", {"limit": limit}, lambda: self.inner.get_items(limit))
        return list(items)

    async def add_items(self, items: list[Any]) -> None:
        await self._step("add_items", {"items": items}, lambda: self.inner.add_items(items))

    async def pop_item(self) -> Any:
        return await self._step("pop_item", None, self.inner.pop_item)

    async def clear_session(self) -> None:
        await self._step("clear_session", None, self.inner.clear_session)

    async def _step(self, operation: str, input: Any, body: Callable[[], Awaitable[Any]]) -> Any:
        run = current_run()
        if run is None:
            return await body()
        return await durable_call(_operation(operation), body, digest=digest_of(input), run=run)


_operations: dict[str, Operation[Any]] = {}


def _operation(name: str) -> Operation[Any]:
    """One Operation per session method: items are JSON already (the SDK's input items)."""
    op = _operations.get(name)
    if op is None:
        op = _operations.setdefault(name, Operation(f"session.{name}"))
    return op


def durable_session(session: Session | None) -> Session | None:
    """``session`` wrapped once; None and OpenAI's server-side sessions as they are."""
    if session is None or isinstance(session, DurableSession | OpenAIConversationsSession):
        return session
    return DurableSession(session)
