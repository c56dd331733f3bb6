"""Input and output guardrails as steps.

A guardrail often runs an agent of its own (with its own ``RunConfig``, out of the plugin's
reach), so its verdict is checkpointed as a whole: ``guardrail.input.<name>`` /
``guardrail.output.<name>``. A replayed guardrail returns its recorded verdict (a tripwire trips
again) without running; its ``output_info`` comes back as stored JSON or its pydantic type.
"""

from __future__ import annotations

import copy
import inspect
import weakref
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from agents import GuardrailFunctionOutput, InputGuardrail, OutputGuardrail

from tidebase_core.operations import Operation, durable_call
from tidebase_core.plugin import current_run

from .digests import digest_of
from .typed_values import dump_typed, load_typed

__all__ = ["durable_guardrail"]

G = TypeVar("G", InputGuardrail[Any], OutputGuardrail[Any])

_durable: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()  # functions made here


def durable_guardrail(guardrail: G) -> G:
    """A copy of ``guardrail`` whose verdict is a step of the active run."""
    function = guardrail.guardrail_function
    if function in _durable:
        return guardrail
    kind: Literal["input", "output"] = (
        "input" if isinstance(guardrail, InputGuardrail) else "output"
    )
    durable = copy.copy(guardrail)
    durable.guardrail_function = _durable_function(kind, guardrail.get_name(), function)
    return durable


def _durable_function(kind: str, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    op: Operation[GuardrailFunctionOutput] = Operation(
        f"guardrail.{kind}.{name}", dump=_dump_verdict, load=_load_verdict
    )

    async def guardrail_function(context: Any, agent: Any, data: Any) -> GuardrailFunctionOutput:
        run = current_run()
        if run is None:
            return await _call(function, context, agent, data)

        async def call() -> GuardrailFunctionOutput:
            return await _call(function, context, agent, data)

        return await durable_call(op, call, digest=digest_of(data), run=run)

    _durable.add(guardrail_function)
    return guardrail_function


def _dump_verdict(verdict: GuardrailFunctionOutput) -> dict[str, Any]:
    return {
        "tripwire_triggered": verdict.tripwire_triggered,
        "output_info": dump_typed(verdict.output_info),
    }


def _load_verdict(stored: dict[str, Any]) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(
        output_info=load_typed(stored["output_info"]),
        tripwire_triggered=stored["tripwire_triggered"],
    )


async def _call(function: Callable[..., Any], *args: Any) -> GuardrailFunctionOutput:
    verdict = function(*args)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    if not isinstance(verdict, GuardrailFunctionOutput):
        raise TypeError(
            f"guardrail function {getattr(function, '__qualname__', function)!r} returned "
            f"{type(verdict).__name__}; it must return agents.GuardrailFunctionOutput"
        )
    return verdict
