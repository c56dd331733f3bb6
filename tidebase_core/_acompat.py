"""Concurrency primitives of the async engine.

``tidebase_core/_async/`` is written against these names; the generated ``_sync/`` code imports
the same names from ``_compat``, which implements them with threads and blocking calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

if TYPE_CHECKING:
    from ._async.store import AsyncStore
    from ._sync.store import Store

__all__ = [
    "Event",
    "Lock",
    "blocking_twin",
    "resolve",
    "run_blocking",
    "sleep",
    "spawn",
    "wait_event",
]

P = ParamSpec("P")
T = TypeVar("T")

Lock = asyncio.Lock
Event = asyncio.Event
sleep = asyncio.sleep


async def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work (starting the embedded server, migrations) off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def resolve(value: Any) -> Any:
    """The value a step function produced: awaited if it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


def spawn(fn: Callable[[], Awaitable[Any]]) -> asyncio.Task[Any]:
    return asyncio.ensure_future(fn())


def blocking_twin(store: AsyncStore) -> Store:
    """A small blocking store on the same database, for work that runs off the event loop
    (the heartbeat thread, sync steps inside async workflows)."""
    from ._sync.store import Store

    return Store(dataclasses.replace(store.settings, max_connections=2))
