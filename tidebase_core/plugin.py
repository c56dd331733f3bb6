"""The engine's face for integration plugins (Pydantic AI, OpenAI Agents SDK, LangChain …).

A plugin turns its framework's units of work into durable operations of the active run: it
describes each kind once as an ``Operation`` (how its result is stored, which ledger rows it
stands for, which exceptions are its outcome) and hands every call to ``durable_call``,
``durable_call_sync``, ``durable_stream`` or ``durable_stream_sync``
(``tidebase_core.operations``), which key, look up, check liveness and budget, execute, save
with usage and record failures the same way for every plugin. Plugins import this module, not
the engine's internals::

    MODEL = Operation("model.request", dump=dump_response, load=load_response, usage=usage_rows,
                      errors=ErrorCodec(ProviderError))

    async def request(messages):
        return await durable_call(MODEL, lambda: call_model(messages),
                                  digest=input_hash(normalized(messages)))

Outside a run ``durable_call`` just makes the call: plugins do nothing there.
"""

from __future__ import annotations

from typing import Any

from . import context
from ._async.context import AsyncRunContext
from ._sync.context import RunContext
from .context import current_run
from .operations import (
    ErrorCodec,
    Operation,
    Usage,
    blocking_run,
    durable_call,
    durable_call_sync,
    durable_stream,
    durable_stream_sync,
)
from .replay import StepPolicy
from .serialization import decode, decode_json, encode, input_hash, type_adapter

__all__ = [
    "AnyRunContext",
    "ErrorCodec",
    "Operation",
    "StepPolicy",
    "Usage",
    "blocking_run",
    "current_run",
    "current_step_key",
    "decode",
    "decode_json",
    "durable_call",
    "durable_call_sync",
    "durable_stream",
    "durable_stream_sync",
    "emit_event_sync",
    "encode",
    "input_hash",
    "record_usage_sync",
    "type_adapter",
]

AnyRunContext = RunContext | AsyncRunContext


def current_step_key() -> str | None:
    """The key of the step whose body is running here (None in a workflow body, or outside)."""
    return context.current_step.get()


def emit_event_sync(run: AnyRunContext, type: str, payload: Any = None) -> int | None:
    """Append an event describing this execution (not skipped on replay), from sync code (a
    framework's callbacks), whichever API runs the workflow."""
    with blocking_run(run) as sync_run:
        return sync_run.events.emit(type, payload, once=False)


def record_usage_sync(run: AnyRunContext, **fields: Any) -> None:
    """``run.usage.record(**fields)`` from sync code, whichever API runs the workflow."""
    with blocking_run(run) as sync_run:
        sync_run.usage.record(**fields)
