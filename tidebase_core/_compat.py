"""Concurrency primitives of the sync engine (the blocking twins of ``_acompat``)."""

from __future__ import annotations

import contextvars
import inspect
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from .branches import install_thread_hooks
from .errors import AsyncInSyncApi, StepTimeout
from .keys import current_scope

if TYPE_CHECKING:
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

Lock = threading.Lock
# A run's every write goes through its one connection, so a new run's claim can wait for the
# first (see _acompat).
DEFER_NEW_CLAIMS = True
StepResult = Any
sleep = time.sleep


def run_blocking(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    return fn(*args, **kwargs)


def shielded(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """The async engine shields cleanup from task cancellation; threads are not cancelled."""
    return fn(*args, **kwargs)


def resolve(value: Any) -> Any:
    """The value a step function produced; a coroutine here is a mistake worth naming."""
    if hasattr(type(value), "__await__"):
        if inspect.iscoroutine(value):
            value.close()  # avoid "coroutine was never awaited" noise on top of our error
        raise AsyncInSyncApi(
            "the step function returned an awaitable, but this is the sync API: use "
            "AsyncTidebase (from tidebase.aio) and `await run.step(...)`, or pass a sync function"
        )
    return value


def install_branches() -> None:
    """Threads started inside a run become branches of it (idempotent)."""
    install_thread_hooks()


def call_body(fn: Callable[[], Any], timeout: float | None) -> Any:
    """A step body's value, bounded by ``timeout`` seconds (``StepTimeout``).

    The body runs in a thread (started inside the run, it carries the run's context as a strand
    of its own). A thread cannot be stopped: past the timeout the body is abandoned, and its
    key scope is closed so nothing it does later can write a checkpoint.
    """
    if timeout is None:
        return resolve(fn())
    scope = current_scope.get()
    done: list[Any] = []
    failed: list[BaseException] = []

    def target() -> None:
        try:
            done.append(resolve(fn()))
        except BaseException as exc:
            failed.append(exc)

    worker = threading.Thread(target=target, name="tidebase-step-timeout", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        if scope is not None:
            scope.closed = True
        raise StepTimeout(f"the step body ran longer than timeout_s={timeout}")
    if failed:
        raise failed[0]
    return done[0]


def gather(calls: Sequence[Callable[[], T]], limit: int) -> list[T | BaseException]:
    """Run ``calls`` in threads (at most ``limit`` at once), each in a copy of the caller's
    context; results in order, an exception in place of a result for calls that raised."""

    def one(call: Callable[[], T]) -> T | BaseException:
        try:
            return call()
        except BaseException as exc:
            return exc

    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="tidebase-fanout") as pool:
        futures = [pool.submit(contextvars.copy_context().run, one, c) for c in calls]
        return [f.result() for f in futures]


def blocking_twin(store: Store) -> Store:
    """The sync client's own store already blocks."""
    return store
