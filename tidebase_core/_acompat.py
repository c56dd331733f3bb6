"""Concurrency primitives of the async engine.

``tidebase_core/_async/`` is written against these names; the generated ``_sync/`` code imports
the same names from ``_compat``, which implements them with threads and blocking calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .branches import install_task_factory, install_thread_hooks
from .errors import StepTimeout

if TYPE_CHECKING:
    from ._async.store import AsyncStore
    from ._sync.store import Store

__all__ = [
    "DEFER_NEW_CLAIMS",
    "Lock",
    "StepResult",
    "blocking_twin",
    "call_body",
    "gather",
    "install_branches",
    "resolve",
    "run_blocking",
    "shielded",
    "sleep",
]

P = ParamSpec("P")
T = TypeVar("T")

Lock = asyncio.Lock
# Whether a new run's claim may wait for its first statement (DESIGN §6). Not here: an async
# run's sync callbacks write through a connection of their own (operations.blocking_run),
# which cannot wait for a claim the event loop has yet to send. The sync engine's runs write
# through their one connection only.
DEFER_NEW_CLAIMS = False
StepResult = Awaitable[Any]
"""What ``run.step`` returns: an awaitable here, the value itself in the sync engine."""
sleep = asyncio.sleep


async def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking work (starting the embedded server, migrations) off the event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def resolve(value: Any) -> Any:
    """The value a step function produced: awaited if it is awaitable."""
    # Coroutines, futures and tasks define __await__; this is much cheaper than
    # inspect.isawaitable's ABC check on every plain value a step returns.
    if hasattr(type(value), "__await__"):
        return await value
    return value


async def shielded(fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """``await fn(*args, **kwargs)`` to the end (cleanup: giving a lease or a connection back)
    even when the task is being cancelled: by ``task.cancel()``/``asyncio.timeout``
    (edge-triggered: the cleanup runs in a task of its own, awaited to the end) or by an anyio
    cancel scope such as ``anyio.move_on_after`` (level-triggered: it cancels every await inside
    the scope, so the wait is shielded with anyio's own shield). A cancellation that arrives
    meanwhile is re-raised once the work is done."""
    task = asyncio.ensure_future(fn(*args, **kwargs))
    anyio = sys.modules.get("anyio")  # only ever loaded by code that uses anyio
    shield: Any = contextlib.nullcontext()
    if anyio is not None:
        with contextlib.suppress(Exception):  # not in an anyio-aware task
            shield = anyio.CancelScope(shield=True)
    cancelled: asyncio.CancelledError | None = None
    with shield:
        while True:
            try:
                result = await asyncio.shield(task)
                break
            except asyncio.CancelledError as exc:
                if task.done() and not task.cancelled():
                    result = task.result()
                    cancelled = exc
                    break
                if task.cancelled():
                    raise
                cancelled = exc
    if cancelled is not None:
        raise cancelled
    return result


def install_branches() -> None:
    """Tasks created and threads started inside a run become branches of it (idempotent)."""
    install_task_factory(asyncio.get_running_loop())
    install_thread_hooks()


async def call_body(fn: Callable[[], Any], timeout: float | None) -> Any:
    """A step body's value, bounded by ``timeout`` seconds (``StepTimeout``)."""
    if timeout is None:
        return await resolve(fn())
    bound = asyncio.timeout(timeout)
    try:
        async with bound:
            return await resolve(fn())
    except TimeoutError:
        if bound.expired():
            raise StepTimeout(f"the step body ran longer than timeout_s={timeout}") from None
        raise  # the body's own TimeoutError


async def gather(
    calls: Sequence[Callable[[], Awaitable[T]]], limit: int
) -> list[T | BaseException]:
    """Run ``calls`` concurrently (at most ``limit`` at once), each in its own task; results in
    order, an exception in place of a result for calls that raised."""
    semaphore = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls), return_exceptions=True))


def blocking_twin(store: AsyncStore) -> Store:
    """A small blocking store on the same database, for work that runs off the event loop
    (the heartbeat thread, sync steps inside async workflows)."""
    from ._sync.store import Store

    return Store(dataclasses.replace(store.settings, max_connections=2))
