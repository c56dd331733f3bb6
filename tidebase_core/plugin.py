"""The engine's face for integration plugins (Pydantic AI, OpenAI Agents SDK, LangChain …).

A plugin turns its framework's units of work into steps of the active run. It needs: the
active run (``current_run``), keys and input hashes of its own choosing, and a way to look up
and store checkpoints that works from sync and async code whichever API (``Tidebase`` or
``AsyncTidebase``) runs the workflow. Plugins import this module, not the engine's internals.

    run = current_run()
    if run is None:                      # outside a run: plugins do nothing
        return await call_model()
    key = run.next_key("model.request")
    digest = input_hash(normalized_messages)
    stored = run.checkpoint_of(key, digest)      # raises InputMismatch on drift
    if stored is not None:
        return decode(stored, ModelResponse)
    response = await call_model()
    await save_checkpoint(run, key, digest, response, usage=[{...}])
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from . import context
from ._async.context import AsyncRunContext, UsageOf
from ._sync.context import RunContext
from .context import current_run
from .replay import StepPolicy
from .serialization import decode, decode_json, encode, input_hash

__all__ = [
    "AnyRunContext",
    "StepPolicy",
    "blocking_run",
    "check_live",
    "current_run",
    "current_step_key",
    "decode",
    "decode_json",
    "emit_event_sync",
    "encode",
    "input_hash",
    "record_usage_sync",
    "run_async_step",
    "run_sync_step",
    "save_checkpoint",
    "save_checkpoint_sync",
]

AnyRunContext = RunContext | AsyncRunContext
_PLAIN = StepPolicy()


def current_step_key() -> str | None:
    """The key of the step whose body is running here (None in a workflow body, or outside)."""
    return context.current_step.get()


def blocking_run(run: AnyRunContext) -> AbstractContextManager[RunContext]:
    """``with blocking_run(run) as sync_run:`` a sync context on ``run`` for sync code (a
    framework's callbacks): the run itself, or a blocking view of an async run that writes
    through a connection of its own."""
    if isinstance(run, RunContext):
        return nullcontext(run)
    return _BlockingView(run)


class _BlockingView(AbstractContextManager[RunContext]):
    def __init__(self, run: AsyncRunContext) -> None:
        self._run = run
        self._cm: Any = None

    def __enter__(self) -> RunContext:
        self._cm = self._run._client._blocking_store().connection()
        db = self._cm.__enter__()
        return RunContext(self._run._client, self._run._execution, db, self._run.input)  # type: ignore[arg-type]

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


def emit_event_sync(run: AnyRunContext, type: str, payload: Any = None) -> int | None:
    """Append an event describing this execution (not skipped on replay), from sync code."""
    with blocking_run(run) as sync_run:
        return sync_run.events.emit(type, payload, once=False)


def record_usage_sync(run: AnyRunContext, **fields: Any) -> None:
    """``run.usage.record(**fields)`` from sync code, whichever API runs the workflow."""
    with blocking_run(run) as sync_run:
        sync_run.usage.record(**fields)


def save_checkpoint_sync(
    run: AnyRunContext,
    key: str,
    digest: str,
    output: Any,
    *,
    policy: StepPolicy = _PLAIN,
    usage: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Store ``output`` as step ``key``'s checkpoint from sync code (usage in the same write)."""
    with blocking_run(run) as sync_run:
        sync_run.save_checkpoint(key, digest, output, policy=policy, usage=usage)


async def save_checkpoint(
    run: AnyRunContext,
    key: str,
    digest: str,
    output: Any,
    *,
    policy: StepPolicy = _PLAIN,
    usage: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Store ``output`` as step ``key``'s checkpoint from async code."""
    if isinstance(run, AsyncRunContext):
        await run.save_checkpoint(key, digest, output, policy=policy, usage=usage)
    else:
        await asyncio.to_thread(
            save_checkpoint_sync, run, key, digest, output, policy=policy, usage=usage
        )


def check_live(run: AnyRunContext) -> None:
    """Raise ``RunCancelled`` / ``LeaseLost`` now if the heartbeat saw a cancel or a takeover
    (no I/O): for a plugin about to pay for a model call outside ``run_*_step``."""
    run._execution.check_live()


def run_sync_step(
    run: AnyRunContext,
    key: str,
    fn: Callable[[], Any],
    *,
    digest: str,
    policy: StepPolicy = _PLAIN,
    output_type: Any = None,
    usage: UsageOf | None = None,
) -> Any:
    """``run.step`` for a sync body, with the plugin's key and hash, in a sync or async run.

    A failing body's failure is recorded on the step, and its own exception is raised, as the
    framework calling it expects.
    """
    with blocking_run(run) as sync_run:
        return sync_run.run_step(
            key, fn, input_hash=digest, policy=policy, output_type=output_type, usage=usage
        )


async def run_async_step(
    run: AnyRunContext,
    key: str,
    fn: Callable[[], Awaitable[Any]],
    *,
    digest: str,
    policy: StepPolicy = _PLAIN,
    output_type: Any = None,
    usage: UsageOf | None = None,
) -> Any:
    """``run.step`` for an async body, in a sync or async run.

    A failing body's own exception is raised (not ``StepFailed``). In a sync run (an async
    framework driven from a sync workflow) the body runs on the caller's event loop and the
    checkpoint is written from a thread; ``policy`` retries, intent records and recorded
    failures need the async API there.
    """
    if isinstance(run, AsyncRunContext):
        return await run.run_step(
            key, fn, input_hash=digest, policy=policy, output_type=output_type, usage=usage
        )
    stored = run.checkpoint_of(key, digest)
    if stored is not None:
        return decode(stored, output_type)
    run._execution.check_live()
    token = context.current_step.set(key)
    try:
        value = await fn()
    finally:
        context.current_step.reset(token)
    await save_checkpoint(
        run, key, digest, value, policy=policy, usage=usage(value) if usage else ()
    )
    return value
