"""Function-tool calls as durable operations: ``durable_tool`` makes a durable copy of a
``FunctionTool``.

A call is the operation ``tool.<name>.<call_id>`` (``durable_call`` with the call id as its
identity): the call id comes from the model's (replayed) output, so parallel calls with
identical arguments stay distinct and keep their keys whatever order they finish in. The copy
wraps the tool's outer ``on_invoke_tool``, so a failure the tool's own error handler turned
into a message is stored as that message, like any result.

When the run's ``context=`` is a pydantic model or a dataclass, the call's checkpoint holds the
context as the tool left it, and a replayed call sets those fields again: a tool's changes to
the context survive a resume although the tool does not run again.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, overload

from agents import FunctionTool
from agents.tool_context import ToolContext

from tidebase_core.operations import Operation, durable_call
from tidebase_core.plugin import StepPolicy, current_run, input_hash
from tidebase_core.replay import ReplayMode
from tidebase_core.retry import RetryPolicy

from .log import tool_ended
from .typed_values import (
    apply_context,
    capturable,
    dump_context,
    dump_typed,
    load_typed,
    register_classes_of,
)

__all__ = ["durable_tool", "is_durable_tool"]

IdempotencyKey = str | Callable[[ToolContext[Any], str], str]
"""A fixed key, or a function of the call's ``ToolContext`` and its JSON arguments."""

Invoker = Callable[[ToolContext[Any], str], Awaitable[Any]]

# Durable invoker -> the invoker it wraps (a durable tool re-wrapped with new options wraps the
# tool's own invoker again, not the durable one).
_wrapped: weakref.WeakKeyDictionary[Any, Invoker] = weakref.WeakKeyDictionary()

# A stored call that carries the run's context too: {_RESULT: output, _CONTEXT: context fields}.
_RESULT = "$openai_agents.result"
_CONTEXT = "context"


@dataclasses.dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What one tool call produced: its output and, when capturable, the context after it."""

    output: Any
    context: Any = None


def _dump(outcome: ToolOutcome) -> Any:
    output = dump_typed(outcome.output)
    if outcome.context is None:
        return output
    return {_RESULT: output, _CONTEXT: outcome.context}


def _load(stored: Any) -> ToolOutcome:
    if isinstance(stored, dict) and _RESULT in stored:
        return ToolOutcome(load_typed(stored[_RESULT]), stored[_CONTEXT])
    return ToolOutcome(load_typed(stored))  # no context captured (or a checkpoint before it was)


def _context_fields(context: Any) -> Any:
    """The JSON fields of the run's ``context=``, when it is a model or dataclass that JSON can
    hold (one holding a client or a connection is not captured: see the docs' limits)."""
    if not capturable(context):
        return None
    try:
        return dump_context(context)
    except Exception:  # pydantic's serialization and schema errors: not a value object
        return None


# One Operation per tool name; a call's own policy (idempotency key …) is set per call.
_operations: dict[str, Operation[ToolOutcome]] = {}


def _operation(tool_name: str) -> Operation[ToolOutcome]:
    op = _operations.get(tool_name)
    if op is None:
        op = _operations.setdefault(
            tool_name, Operation(f"tool.{tool_name}", dump=_dump, load=_load)
        )
    return op


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
        # Result classes named by the annotation are allowed back on replay (typed_values);
        # a tool not made by @function_tool has no __wrapped__: classes resolve by sys.modules.
        with contextlib.suppress(AttributeError):
            register_classes_of(original.__wrapped__)
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
        call_id = getattr(ctx, "tool_call_id", None) or None
        op = _operation(tool_name)
        fixed = idempotency_key(ctx, arguments) if callable(idempotency_key) else idempotency_key
        if (side_effects, fixed, replay, retries) != (None, None, None, 0):
            policy = StepPolicy.build(
                op.key_name(call_id),
                side_effects=side_effects,
                idempotency_key=fixed,
                replay=replay,
                retries=retries,
            )
            op = dataclasses.replace(op, policy=policy)
        user_context = getattr(ctx, "context", None)
        ran = False

        async def call() -> ToolOutcome:
            nonlocal ran
            ran = True
            output = await invoke(ctx, arguments)
            # The context as this tool left it (DESIGN §4b): re-applied when the call replays.
            return ToolOutcome(output, _context_fields(user_context))

        # The agent, when the SDK gives the ToolContext one (0.24 does, 0.8 does not).
        agent = getattr(getattr(ctx, "agent", None), "name", None)

        def ended(outcome: ToolOutcome) -> list[tuple[str, Any]]:
            # TidebaseHooks' tool.ended, in the checkpoint's own statement (see hooks.py).
            return [("tool.ended", tool_ended(agent, tool_name, call_id, outcome.output))]

        outcome = await durable_call(
            op,
            call,
            digest=input_hash({"arguments": arguments}),
            identity=call_id,
            run=run,
            log=ended,
        )
        if not ran and outcome.context is not None and capturable(user_context):
            apply_context(user_context, outcome.context)
        return outcome.output

    _wrapped[on_invoke_tool] = invoke
    return on_invoke_tool
