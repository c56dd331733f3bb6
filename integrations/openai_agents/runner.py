"""``run_agent`` and ``run_agent_streamed``: ``Runner.run`` / ``Runner.run_streamed`` made durable.

Both run a durable copy of the agent graph with ``durable_run_config``, ``TidebaseHooks``
around the user's own hooks and a ``DurableSession`` around ``session=``; every other keyword
goes to the runner as it is (``context=`` reaches tools unchanged). Outside a run they are
plain ``Runner.run`` / ``run_streamed``.

Tools that need approval (``needs_approval``) become gates of the run by default: each pending
call opens the gate ``approve.<tool>.<call_id>``, the decision approves or rejects the call, and
the run continues; a replayed run meets the recorded decision at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal, overload

import wrapt
from agents import Agent, RunConfig, Runner, RunResult, RunResultStreaming
from agents.exceptions import UserError
from agents.lifecycle import RunHooksBase

from tidebase_core import AsyncRunContext
from tidebase_core.errors import LeaseLost, RunCancelled
from tidebase_core.keys import Scope, entered
from tidebase_core.plugin import AnyRunContext, current_run

from .config import durable_run_config
from .graph import durable_agent, is_durable_agent
from .hooks import TidebaseHooks
from .sessions import durable_session
from .steps import active_run

__all__ = ["install_runner_hook", "run_agent", "run_agent_streamed"]

Approvals = Literal["gate", "return"]


@overload
async def run_agent(
    run: AnyRunContext | None,
    agent: Agent[Any],
    input: Any,
    /,
    *,
    approvals: Approvals = "gate",
    wait_for_approval: bool = True,
    **runner_kwargs: Any,
) -> RunResult: ...


@overload
async def run_agent(
    agent: Agent[Any],
    input: Any,
    /,
    *,
    approvals: Approvals = "gate",
    wait_for_approval: bool = True,
    **runner_kwargs: Any,
) -> RunResult: ...


async def run_agent(
    *args: Any,
    approvals: Approvals = "gate",
    wait_for_approval: bool = True,
    **runner_kwargs: Any,
) -> RunResult:
    """``Runner.run(agent, input, **runner_kwargs)`` as part of the run (default: the active one).

    ``approvals="gate"`` turns pending tool approvals into gates of the run (``wait_for_approval``
    is the gate's ``wait``: False parks the run and raises ``GatePending``); ``"return"`` returns
    the result with its ``interruptions``, as ``Runner.run`` does.
    """
    run, agent, input = _arguments("run_agent", args)
    if approvals not in ("gate", "return"):
        raise ValueError(f"run_agent(approvals=...) must be 'gate' or 'return', got {approvals!r}")
    active = active_run(run)
    if active is None:
        return await Runner.run(agent, input, **runner_kwargs)
    durable, kwargs = _durable(active, agent, runner_kwargs)
    scope = _own_scope(active, agent)
    with entered(scope), _run_verdicts():
        result = await Runner.run(durable, input, **kwargs)
    while approvals == "gate" and getattr(result, "interruptions", None):
        state = result.to_state()
        for item in result.interruptions:
            # Gates keep the names people approve them by: approve.<tool>.<call id>.
            if await _approved(active, item, wait_for_approval):
                state.approve(item)
            else:
                state.reject(item)
        with entered(scope), _run_verdicts():
            result = await Runner.run(durable, state, **kwargs)
    return result


@overload
def run_agent_streamed(
    run: AnyRunContext | None, agent: Agent[Any], input: Any, /, **runner_kwargs: Any
) -> RunResultStreaming: ...


@overload
def run_agent_streamed(
    agent: Agent[Any], input: Any, /, **runner_kwargs: Any
) -> RunResultStreaming: ...


def run_agent_streamed(*args: Any, **runner_kwargs: Any) -> RunResultStreaming:
    """``Runner.run_streamed(agent, input, **runner_kwargs)`` as part of the run.

    A replayed model call streams no token deltas: it yields its recorded
    ``response.completed`` event, and the run items that follow from it.
    """
    run, agent, input = _arguments("run_agent_streamed", args)
    active = active_run(run)
    if active is None:
        return Runner.run_streamed(agent, input, **runner_kwargs)
    durable, kwargs = _durable(active, agent, runner_kwargs)
    with entered(_own_scope(active, agent)):  # the runner's task copies the context when created
        return Runner.run_streamed(durable, input, **kwargs)


def _own_scope(run: AnyRunContext, agent: Agent[Any]) -> Scope:
    """The scope everything this agent run does is keyed under (``<agent>.run/``, ``#2`` …,
    taken in program order when it starts): agent runs gathered together never share a
    sequence."""
    return run._execution.scope_under(run.next_key(f"{agent.name}.run"))


@contextmanager
def _run_verdicts() -> Iterator[None]:
    """The SDK reports a tool's exception as ``UserError("Error running tool …")``; when it is
    the run's own verdict (cancelled, taken over), raise that, as every other step does."""
    try:
        yield
    except UserError as exc:
        cause = exc.__cause__
        if isinstance(cause, RunCancelled | LeaseLost):
            raise cause from None
        raise


def _arguments(caller: str, args: tuple[Any, ...]) -> tuple[AnyRunContext | None, Agent[Any], Any]:
    """``(run, agent, input)`` or ``(agent, input)``."""
    if len(args) == 2 and isinstance(args[0], Agent):
        return None, args[0], args[1]
    if len(args) == 3 and isinstance(args[1], Agent):
        return args[0], args[1], args[2]
    raise TypeError(
        f"{caller} takes (run, agent, input) or (agent, input), where agent is an agents.Agent; "
        f"got {len(args)} positional arguments ({', '.join(type(a).__name__ for a in args)})"
    )


def _durable(
    run: AnyRunContext, agent: Agent[Any], runner_kwargs: dict[str, Any]
) -> tuple[Agent[Any], dict[str, Any]]:
    kwargs = dict(runner_kwargs)
    hooks = kwargs.get("hooks")
    if hooks is not None and not isinstance(hooks, RunHooksBase):
        raise TypeError(f"hooks must be agents.RunHooks, got {type(hooks).__name__}")
    if not isinstance(hooks, TidebaseHooks):
        kwargs["hooks"] = TidebaseHooks(hooks)
    config: RunConfig | None = kwargs.get("run_config")
    kwargs["run_config"] = durable_run_config(run, config)
    if kwargs.get("session") is not None:
        kwargs["session"] = durable_session(kwargs["session"])
    return durable_agent(agent), kwargs


async def _approved(run: AnyRunContext, item: Any, wait: bool) -> bool:
    """The decision of the gate for one pending tool call."""
    raw = getattr(item, "raw_item", None)
    tool = getattr(item, "name", None) or getattr(raw, "name", None) or "tool"
    call_id = getattr(item, "call_id", None) or getattr(raw, "call_id", None)
    arguments = getattr(item, "arguments", None) or getattr(raw, "arguments", None)
    agent = getattr(getattr(item, "agent", None), "name", None)
    name = f"approve.{tool}.{call_id}" if call_id else f"approve.{tool}"
    prompt = f"Allow {agent or 'the agent'} to call {tool}({arguments or ''})?"
    data = {"agent": agent, "tool": tool, "call_id": call_id, "arguments": arguments}
    if isinstance(run, AsyncRunContext):
        decision = await run.gate(name, prompt, data=data, wait=wait)
    else:
        decision = await asyncio.to_thread(run.gate, name, prompt, data=data, wait=wait)
    return decision.approved


def install_runner_hook() -> None:
    """Make every ``Runner.run`` inside a Tidebase run durable, not only ``run_agent``: an
    agent delegated to from a tool, a guardrail running its own agent, ``agent.as_tool`` over
    a plain agent. Each is ``run_agent(..., approvals="return")``, keyed under the step it runs
    in, its model calls checkpointed and in the ledger. Outside a run, and for the durable
    copies ``run_agent`` runs, ``Runner.run`` is untouched. Installed once, on import."""
    global _hooked
    if not _hooked:
        wrapt.wrap_function_wrapper(Runner, "run", _durable_runner_run)
        _hooked = True


_hooked = False


def _durable_runner_run(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    options = dict(kwargs)
    agent = args[0] if args else options.pop("starting_agent", None)
    if len(args) > 1:
        input = args[1]
    elif "input" in options:
        input = options.pop("input")
    else:
        return wrapped(*args, **kwargs)
    if current_run() is None or not isinstance(agent, Agent) or is_durable_agent(agent):
        return wrapped(*args, **kwargs)
    return run_agent(agent, input, approvals="return", **options)
