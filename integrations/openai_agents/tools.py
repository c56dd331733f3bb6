"""Function-tool calls as steps: ``durable_tool`` makes a durable copy of a ``FunctionTool``.

A call is the step ``tool.<name>.<call_id>``: the call id comes from the model's (replayed)
output, so parallel calls with identical arguments stay distinct and keep their keys whatever
order they finish in. The copy wraps the tool's outer ``on_invoke_tool``, so a failure the
tool's own error handler turned into a message is stored as that message, like any result.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, overload

from agents import FunctionTool
from agents.tool_context import ToolContext

from tidebase_core.plugin import StepPolicy, current_run, input_hash
from tidebase_core.replay import ReplayMode
from tidebase_core.retry import RetryPolicy

from .steps import run_as_step
from .typed_values import dump_typed, load_typed

__all__ = ["durable_tool", "is_durable_tool"]

IdempotencyKey = str | Callable[[ToolContext[Any], str], str]
"""A fixed key, or a function of the call's ``ToolContext`` and its JSON arguments."""

Invoker = Callable[[ToolContext[Any], str], Awaitable[Any]]

# Durable invoker -> the invoker it wraps (a durable tool re-wrapped with new options wraps the
# tool's own invoker again, not the durable one).
_wrapped: weakref.WeakKeyDictionary[Any, Invoker] = weakref.WeakKeyDictionary()


def is_durable_tool(tool: object) -> bool:
    return isinstance(tool, FunctionTool) and tool.on_invoke_tool in _wrapped


@overload
def durable_tool(
    tool: FunctionTool,
    *,
    side_effects: Sequence[str] | None = None,
    idempotency_key: IdempotencyKey | None = None,
    replay: ReplayMode | None = None,
    retries: int | RetryPolicy = 0,
) -> FunctionTool: ...


@overload
def durable_tool(
    tool: None = None,
    *,
    side_effects: Sequence[str] | None = None,
    idempotency_key: IdempotencyKey | None = None,
    replay: ReplayMode | None = None,
    retries: int | RetryPolicy = 0,
) -> Callable[[FunctionTool], FunctionTool]: ...


def durable_tool(
    tool: FunctionTool | None = None,
    *,
    side_effects: Sequence[str] | None = None,
    idempotency_key: IdempotencyKey | None = None,
    replay: ReplayMode | None = None,
    retries: int | RetryPolicy = 0,
) -> FunctionTool | Callable[[FunctionTool], FunctionTool]:
    """A copy of ``tool`` whose calls are steps of the active run (the original is untouched).

    Use it as ``durable_tool(tool)`` or stacked over ``@function_tool``::

        @durable_tool(side_effects=["payments"],
                      idempotency_key=lambda ctx, args: f"refund-{ctx.tool_call_id}")
        @function_tool
        async def refund(order_id: str) -> str: ...

    ``side_effects``, ``idempotency_key``, ``replay`` and ``retries`` mean what they mean for
    ``run.step``: a tool that acts on the world without an idempotency key is parked for review
    if a crash interrupts it, rather than run twice. Outside a run the copy just runs the tool.
    """

    def make(original: FunctionTool) -> FunctionTool:
        if not isinstance(original, FunctionTool):
            raise TypeError(
                f"durable_tool takes an agents.FunctionTool, got {type(original).__name__}; "
                "decorate the function with @function_tool first (durable_tool goes above it)"
            )
        options = (side_effects, idempotency_key, replay, retries)
        if is_durable_tool(original) and options == (None, None, None, 0):
            return original
        durable = copy.copy(original)
        durable.on_invoke_tool = _durable_invoker(
            original.name,
            _wrapped.get(original.on_invoke_tool, original.on_invoke_tool),
            side_effects=side_effects,
            idempotency_key=idempotency_key,
            replay=replay,
            retries=retries,
        )
        return durable

    return make if tool is None else make(tool)


def _durable_invoker(
    tool_name: str,
    invoke: Invoker,
    *,
    side_effects: Sequence[str] | None,
    idempotency_key: IdempotencyKey | None,
    replay: ReplayMode | None,
    retries: int | RetryPolicy,
) -> Invoker:
    # ``ctx`` is annotated ToolContext: the SDK reads this annotation to decide whether the
    # wrapper gets the full ToolContext (call id, arguments) or a bare RunContextWrapper.
    async def on_invoke_tool(ctx: ToolContext[Any], arguments: str) -> Any:
        run = current_run()
        if run is None:
            return await invoke(ctx, arguments)
        call_id = getattr(ctx, "tool_call_id", None)
        key = run.next_key(f"tool.{tool_name}.{call_id}" if call_id else f"tool.{tool_name}")
        fixed = idempotency_key(ctx, arguments) if callable(idempotency_key) else idempotency_key
        policy = StepPolicy.build(
            key, side_effects=side_effects, idempotency_key=fixed, replay=replay, retries=retries
        )
        fresh: list[Any] = []

        async def call() -> Any:
            output = await invoke(ctx, arguments)
            fresh.append(output)
            return dump_typed(output)

        stored = await run_as_step(
            run, key, call, digest=input_hash({"arguments": arguments}), policy=policy
        )
        return fresh[0] if fresh else load_typed(stored)

    _wrapped[on_invoke_tool] = invoke
    return on_invoke_tool
