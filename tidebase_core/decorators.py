"""``@workflow`` and ``@durable_step``: durable execution by decoration.

Built on ``wrapt``, so a decorated function keeps its signature, docstring and ``inspect``
answers, and works as a plain function, an instance/class/static method, sync or async.

- A workflow call starts a run (or resumes one: ``fn.run(..., run_id=...)`` or
  ``with tidebase.run_id(...)``); its bound arguments are the run's input.
- A step call inside a run is a checkpointed step; outside any run it just runs.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import wrapt

from . import context
from ._async.children import run_child as async_run_child
from ._async.client import AsyncTidebase
from ._async.context import AsyncRunContext
from ._run_base import check_name
from ._sync.children import run_child as sync_run_child
from ._sync.client import Tidebase
from ._sync.context import RunContext
from .budgets import Budget
from .defaults import default_async_client, default_client
from .errors import NotSerializable
from .operations import blocking_run
from .registry import register, takes_run
from .replay import ReplayMode, StepPolicy
from .retry import RetryPolicy
from .serialization import input_hash

__all__ = ["durable_step", "step", "workflow"]

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:  # generic in wrapt's stubs, subscriptable at runtime only in recent wrapt
    _FunctionWrapper = wrapt.FunctionWrapper[..., Any]
    _BoundFunctionWrapper = wrapt.BoundFunctionWrapper[..., Any]
else:
    _FunctionWrapper = wrapt.FunctionWrapper
    _BoundFunctionWrapper = wrapt.BoundFunctionWrapper
KeyOption = Literal["sequence", "content"] | Callable[..., Any] | None


# -- shared helpers ---------------------------------------------------------------------------


@lru_cache(maxsize=2048)
def _signature(fn: Callable[..., Any], drop_first: bool) -> inspect.Signature:
    sig = inspect.signature(fn)
    if drop_first:
        params = list(sig.parameters.values())[1:]
        sig = sig.replace(parameters=params)
    return sig


def _bound_arguments(
    wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """The call's arguments by name, defaults applied, without ``self``/``cls``."""
    func = getattr(wrapped, "__func__", None)
    sig = _signature(func, True) if func is not None else _signature(wrapped, False)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


@lru_cache(maxsize=2048)
def _return_type(fn: Callable[..., Any]) -> Any:
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:  # an unresolvable forward reference: replay plain JSON values
        return None
    return None if hint is type(None) else hint


def _unwrap_function(wrapped: Any) -> Callable[..., Any]:
    return getattr(wrapped, "__func__", wrapped)  # type: ignore[no-any-return]


def _qualname(wrapped: Any) -> str:
    fn = _unwrap_function(wrapped)
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


# -- workflows --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _WorkflowOptions:
    name: str | None
    client: Tidebase | AsyncTidebase | None
    budget: Budget | None = None


class _BoundWorkflow(_BoundFunctionWrapper):
    def run(self, *args: Any, run_id: str, **kwargs: Any) -> Any:
        """Start or resume the run ``run_id`` of this workflow with these arguments."""
        with context.run_id(run_id):
            return self(*args, **kwargs)


class _Workflow(_FunctionWrapper):
    __bound_function_wrapper__ = _BoundWorkflow

    def run(self, *args: Any, run_id: str, **kwargs: Any) -> Any:
        """Start or resume the run ``run_id`` of this workflow with these arguments."""
        with context.run_id(run_id):
            return self(*args, **kwargs)


def _make_workflow(fn: Any, options: _WorkflowOptions) -> Any:
    is_async = inspect.iscoroutinefunction(_unwrap_function(fn))
    name = check_name(options.name or _qualname(fn), "workflow name")

    sdk_shape = takes_run(fn)

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if sdk_shape and args and isinstance(args[0], RunContext | AsyncRunContext):
            # The official SDK's shape, handed to tide.run(name, wf): the engine calls wf(run,
            # input) inside the run it already started.
            return wrapped(*args, **kwargs)
        run_id = context.take_next_run_id()
        arguments = _bound_arguments(wrapped, args, kwargs)
        output_type = _return_type(_unwrap_function(wrapped))

        def body(run: Any, _input: Any) -> Any:
            return wrapped(*args, **kwargs)

        parent = context.current_run()
        if run_id is None and parent is not None:
            # Called from a workflow: a child run on the edge name#n, so a resumed parent
            # finds the same child instead of starting another.
            edge = parent._execution.next_key(name, "child")
            if is_async != isinstance(parent, AsyncRunContext):
                raise TypeError(
                    f"workflow {name!r} is called from workflow {parent.workflow_name!r}; "
                    "nest async workflows in async ones and sync in sync"
                )
            if isinstance(parent, AsyncRunContext):
                return async_run_child(
                    parent,
                    edge,
                    name,
                    body,
                    input=arguments,
                    output_type=output_type,
                    budget=options.budget,
                )
            return sync_run_child(
                parent,
                edge,
                name,
                body,
                input=arguments,
                output_type=output_type,
                budget=options.budget,
            )

        if is_async:

            async def go() -> Any:
                client = options.client or default_async_client()
                if not isinstance(client, AsyncTidebase):
                    raise TypeError(
                        f"async workflow {name!r} is bound to a sync Tidebase client; "
                        "use AsyncTidebase().workflow for async functions"
                    )
                return await client.run(
                    name,
                    body,
                    run_id=run_id,
                    input=arguments,
                    output_type=output_type,
                    budget=options.budget,
                )

            return go()
        client = options.client or default_client()
        if not isinstance(client, Tidebase):
            raise TypeError(
                f"sync workflow {name!r} is bound to an AsyncTidebase client; "
                "use Tidebase().workflow for sync functions"
            )
        return client.run(
            name,
            body,
            run_id=run_id,
            input=arguments,
            output_type=output_type,
            budget=options.budget,
        )

    # By name, so a worker that claims a run of this workflow finds the function.
    register(name, fn, output_type=_return_type(_unwrap_function(fn)), budget=options.budget)
    return _Workflow(fn, wrapper)


@overload
def workflow(fn: F, /) -> F: ...
@overload
def workflow(
    fn: str | None = None,
    /,
    *,
    name: str | None = None,
    client: Tidebase | AsyncTidebase | None = None,
    budget: Budget | None = None,
) -> Callable[[F], F]: ...
def workflow(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    client: Tidebase | AsyncTidebase | None = None,
    budget: Budget | None = None,
) -> Any:
    """Make a function a durable workflow: each call is a run; its steps are checkpointed.

    ``@workflow``, ``@workflow("research")`` or ``@workflow(name="research")``. The default
    name is the function's qualified name; it identifies the workflow in the database (and a
    worker finds the function by it), so keep it stable. ``budget``: caps on the spend of
    each run and its child runs (``Budget(usd=5.0)``), set when a run is created.
    """
    if isinstance(fn, str):  # @workflow("name"): the official SDK's spelling
        if name is not None:
            raise TypeError(f"workflow name given twice: {fn!r} and name={name!r}")
        fn, name = None, fn
    options = _WorkflowOptions(name, client, Budget.coerce(budget))
    if fn is None:
        return lambda f: _make_workflow(f, options)
    return _make_workflow(fn, options)


# -- steps ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StepOptions:
    name: str | None
    key: KeyOption
    side_effects: Sequence[str] | None
    idempotency_key: str | Callable[..., str] | None
    retries: int | RetryPolicy
    replay: ReplayMode | None
    spends: bool = False


def _make_step(fn: Any, options: _StepOptions) -> Any:
    is_async = inspect.iscoroutinefunction(_unwrap_function(fn))
    name = check_name(options.name or _qualname(fn), "step name")
    key_option = options.key
    if not (key_option in (None, "sequence", "content") or callable(key_option)):
        raise ValueError(
            f"step {name!r}: key must be 'sequence', 'content' or a callable of the step's "
            f"arguments, got {key_option!r}"
        )
    static_policy = None
    if not callable(options.idempotency_key):
        static_policy = StepPolicy.build(
            name,
            side_effects=options.side_effects,
            idempotency_key=options.idempotency_key,
            replay=options.replay,
            retries=options.retries,
            spends=options.spends,
        )

    def wrapper(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        run = context.current_run()
        if run is None:
            return wrapped(*args, **kwargs)  # outside any workflow: just a function
        policy = static_policy
        if policy is None:
            assert callable(options.idempotency_key)
            policy = StepPolicy.build(
                name,
                side_effects=options.side_effects,
                idempotency_key=options.idempotency_key(*args, **kwargs),
                replay=options.replay,
                retries=options.retries,
                spends=options.spends,
            )
        key, digest = _key_and_hash(name, key_option, wrapped, args, kwargs, run)
        output_type = _return_type(_unwrap_function(wrapped))

        def body() -> Any:
            return wrapped(*args, **kwargs)

        if is_async:
            if not isinstance(run, AsyncRunContext):
                raise TypeError(
                    f"async step {name!r} was called inside the sync workflow "
                    f"{run.workflow_name!r}; make the workflow async, or the step sync"
                )
            return run.run_step(
                key, body, input_hash=digest, policy=policy, output_type=output_type
            )
        # A sync step inside an async workflow checkpoints synchronously, on its own connection.
        with blocking_run(run) as sync_run:
            return sync_run.run_step(
                key, body, input_hash=digest, policy=policy, output_type=output_type
            )

    return wrapt.FunctionWrapper(fn, wrapper)


def _key_and_hash(
    name: str,
    key_option: KeyOption,
    wrapped: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    run: RunContext | AsyncRunContext,
) -> tuple[str, str]:
    """The step key of this call and the hash of what its result depends on."""
    state = run._execution
    if callable(key_option):
        chosen = key_option(*args, **kwargs)
        if not isinstance(chosen, str):
            raise TypeError(
                f"step {name!r}: the key callable must return a str, got {type(chosen).__name__}"
            )
        return state.next_key(f"{name}:{chosen}"), input_hash(chosen, what="step key")
    arguments = _bound_arguments(wrapped, args, kwargs)
    try:
        digest = input_hash(arguments, what=f"the arguments of step {name!r}")
    except NotSerializable as exc:
        raise NotSerializable(
            f"{exc}. If the result does not depend on that argument (a client, a handle), pass "
            "key=lambda *args, **kwargs: <a string identifying the call> to @durable_step"
        ) from None
    if key_option == "content":
        return state.next_key(f"{name}:{digest[:16]}"), digest
    return state.next_key(name), digest


@overload
def durable_step(fn: F, /) -> F: ...
@overload
def durable_step(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    key: KeyOption = None,
    side_effects: Sequence[str] | None = None,
    idempotency_key: str | Callable[..., str] | None = None,
    retries: int | RetryPolicy = 0,
    replay: ReplayMode | None = None,
    spends: bool = False,
) -> Callable[[F], F]: ...
def durable_step(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    key: KeyOption = None,
    side_effects: Sequence[str] | None = None,
    idempotency_key: str | Callable[..., str] | None = None,
    retries: int | RetryPolicy = 0,
    replay: ReplayMode | None = None,
    spends: bool = False,
) -> Any:
    """Make a function a durable step: inside a run its result is checkpointed and replayed.

    Keys: by default the n-th call of a step in a run is ``name#n`` (deterministic workflows
    replay in order; changed arguments raise ``InputMismatch``). ``key="content"`` keys by the
    arguments instead (agent tool calls, whose order varies); ``key=callable`` returns a string
    that identifies the call. Options mirror ``run.step`` (``spends=True``: the run tree's
    budget is checked before each execution).
    """
    options = _StepOptions(name, key, side_effects, idempotency_key, retries, replay, spends)
    if fn is None:
        return lambda f: _make_step(f, options)
    return _make_step(fn, options)


step = durable_step
