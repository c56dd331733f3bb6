"""Concurrency primitives of the sync engine (the blocking twins of ``_acompat``)."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .errors import AsyncInSyncApi

if TYPE_CHECKING:
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

Lock = threading.Lock
Event = threading.Event
sleep = time.sleep


def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return fn(*args, **kwargs)


def resolve(value: Any) -> Any:
    """The value a step function produced; a coroutine here is a mistake worth naming."""
    if inspect.isawaitable(value):
        if inspect.iscoroutine(value):
            value.close()  # avoid "coroutine was never awaited" noise on top of our error
        raise AsyncInSyncApi(
            "the step function returned an awaitable, but this is the sync API: use "
            "AsyncTidebase (from tidebase.aio) and `await run.step(...)`, or pass a sync function"
        )
    return value


def wait_event(event: threading.Event, seconds: float) -> bool:
    return event.wait(seconds)


def spawn(fn: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def blocking_twin(store: Store) -> Store:
    """The sync client's own store already blocks."""
    return store
