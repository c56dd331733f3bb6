"""Tasks and threads started inside a run.

- asyncio: a task factory on the run's event loop (chained to any factory already there) makes
  each task created inside a run a strand of its own (``keys.Strand``), so the key allocator
  can tell concurrent code apart and refuse what it cannot order.
- threads: ``ThreadPoolExecutor.submit`` and ``threading.Thread.start`` carry the run's context
  into the thread — as a branch of its own, numbered in the order the threads were started —
  so a decorated step called from a worker thread is checkpointed, not silently run bare. A
  caller that copied its context itself (``asyncio.to_thread``, LangChain's executor) lends the
  thread to a strand of its own in that context. Outside a run both are untouched; the hooks
  are installed the first time a run starts, never before.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Coroutine, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import wrapt

from .keys import Strand, current_scope, current_strand

__all__ = ["install_task_factory", "install_thread_hooks"]

_installed_threads = False
_install_lock = threading.Lock()


def _label(fn: Any) -> str:
    """What a strand or branch is named after: the function or coroutine it runs."""
    if isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    return name if isinstance(name, str) and name else type(fn).__qualname__


def _strand(context: contextvars.Context, label: Any) -> Strand:
    """A new strand, started by the one current in ``context``, running in ``context``."""
    strand = Strand(_label(label), context.get(current_strand))
    context.run(current_strand.set, strand)
    return strand


def _finish(strand: Strand) -> Any:
    def done(_: object) -> None:
        strand.end()

    return done


# -- asyncio ----------------------------------------------------------------------------------


class _StrandFactory:
    """Makes each task created inside a run a strand of it, then defers to ``inner``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __call__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        context: contextvars.Context | None = None,
        **kwargs: Any,
    ) -> asyncio.Future[Any]:
        strand = None
        if (current_scope.get() if context is None else context.get(current_scope)) is not None:
            # A copy: the caller's context stays as it was.
            context = contextvars.copy_context() if context is None else context.copy()
            strand = _strand(context, coro)
        if context is not None:
            kwargs["context"] = context
        if self.inner is None:
            task: asyncio.Future[Any] = asyncio.Task(coro, loop=loop, **kwargs)
        else:
            task = self.inner(loop, coro, **kwargs)
        if strand is not None:
            task.add_done_callback(_finish(strand))
        return task


def install_task_factory(loop: asyncio.AbstractEventLoop) -> None:
    """Make tasks created on ``loop`` inside a run strands of it (idempotent)."""
    factory = loop.get_task_factory()
    if not isinstance(factory, _StrandFactory):
        loop.set_task_factory(_StrandFactory(factory))  # type: ignore[arg-type]


# -- threads ----------------------------------------------------------------------------------


def _copied_context(fn: Any, args: Sequence[Any]) -> tuple[contextvars.Context, Any] | None:
    """The context a work item runs in when it is ``ctx.run`` (``submit(ctx.run, f, …)`` or
    ``partial(ctx.run, f, …)``), with the function it runs there; else None.

    Follows nested copies (LangChain's executor wraps LangGraph's ``ctx.run`` in a copy of its
    own): the innermost context is the one the work runs in.
    """
    found: tuple[contextvars.Context, Any] | None = None
    while True:
        if isinstance(fn, functools.partial):
            fn, args = fn.func, (*fn.args, *args)
        owner = getattr(fn, "__self__", None)
        if not isinstance(owner, contextvars.Context) or not args:
            return found
        found = (owner, args[0])
        fn, args = args[0], args[1:]


def _branch_context(label: Any) -> contextvars.Context:
    """A copy of this context running as the next thread branch of the current scope."""
    context = contextvars.copy_context()
    scope = context.get(current_scope)
    assert scope is not None
    context.run(current_scope.set, scope.branch(_label(label)))
    _strand(context, label)
    return context


def _submit(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if current_scope.get() is None or not args:
        return wrapped(*args, **kwargs)
    fn, *rest = args
    copied = _copied_context(fn, rest)
    if copied is not None:
        # Only this work item enters that copy: lend it the thread as a strand of its own.
        strand = _strand(*copied)
    else:
        context = _branch_context(fn)
        strand = context[current_strand]  # type: ignore[assignment]
        fn = functools.partial(context.run, fn)
    future: Future[Any] = wrapped(fn, *rest, **kwargs)
    future.add_done_callback(_finish(strand))
    return future


_pool = threading.local()  # set while ThreadPoolExecutor starts its worker threads


def _start(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # A pool's worker threads serve many work items: each item carries its own context.
    if current_scope.get() is not None and not getattr(_pool, "starting", False):
        target = getattr(instance, "_target", None)
        if target is None:  # a Thread subclass with its own run()
            body = instance.run
        else:
            body = functools.partial(target, *instance._args, **instance._kwargs)
        context = _branch_context(target or body)
        strand = context[current_strand]
        assert strand is not None

        def run() -> None:
            try:
                context.run(body)
            finally:
                strand.end()

        instance.run = run
    return wrapped(*args, **kwargs)


def _adjust_thread(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    _pool.starting = True
    try:
        return wrapped(*args, **kwargs)
    finally:
        _pool.starting = False


def install_thread_hooks() -> None:
    """Carry the run into threads started inside it (idempotent; once per process)."""
    global _installed_threads
    if _installed_threads:
        return
    with _install_lock:
        if _installed_threads:
            return
        wrapt.wrap_function_wrapper(ThreadPoolExecutor, "submit", _submit)
        wrapt.wrap_function_wrapper(ThreadPoolExecutor, "_adjust_thread_count", _adjust_thread)
        wrapt.wrap_function_wrapper(threading.Thread, "start", _start)
        _installed_threads = True
