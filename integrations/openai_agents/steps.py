"""Step keys and step execution shared by the model, tool, guardrail and session wrappers.

Keys follow the framework's own operations in order: ``model.request``, ``model.request#2`` …
for model calls, ``tool.<name>.<call_id>`` for tool calls. Work done inside another step's body
(an agent used as a tool, a guardrail that runs its own agent) is keyed under that step by the
engine (``tool.research.call_1/model.request``), so parallel nested runs never race for the
same ordinal.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from tidebase_core.plugin import (
    AnyRunContext,
    StepPolicy,
    current_run,
    current_step_key,
    run_async_step,
)

__all__ = ["active_run", "give_back_key", "run_as_step", "take_key"]

# Keys of calls that raised before a checkpoint was written, per run and scope: the SDK's own
# retry of that call takes the key again, so the ordinals after it stay what a resume will see.
_spare_keys: weakref.WeakKeyDictionary[Any, dict[tuple[str | None, str], str]] = (
    weakref.WeakKeyDictionary()
)


def active_run(run: AnyRunContext | None = None) -> AnyRunContext | None:
    """The active Tidebase run; ``run``, when given, must be it."""
    active = current_run()
    if run is not None and run is not active:
        raise ValueError(
            f"{run!r} is not the run active here (the active run is {active!r}). Call the "
            "Agents SDK from inside the workflow function that received this run, or pass "
            "run=None to use the active run"
        )
    return active


def take_key(run: AnyRunContext, name: str) -> str:
    """The key of the next ``name`` operation here (a key given back first)."""
    spare = _spare_keys.get(run, {}).pop((current_step_key(), name), None)
    return spare if spare is not None else run.next_key(name)


def give_back_key(run: AnyRunContext, name: str, key: str) -> None:
    """``key`` was not checkpointed: let the next ``name`` operation here (a retry) use it."""
    _spare_keys.setdefault(run, {})[(current_step_key(), name)] = key


async def run_as_step(
    run: AnyRunContext,
    key: str,
    body: Callable[[], Awaitable[Any]],
    *,
    digest: str,
    policy: StepPolicy = StepPolicy(),
    usage: Callable[[Any], list[dict[str, Any]]] | None = None,
) -> Any:
    """``run_async_step``: the SDK decides retries, error handlers and guardrail trips by
    exception type, and ``run_async_step`` raises the body's own exception."""
    return await run_async_step(run, key, body, digest=digest, policy=policy, usage=usage)
