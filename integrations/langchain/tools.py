"""``durable_tool`` / ``durable_tools``: LangChain tools whose calls are steps of the run.

A durable tool is a copy of the tool as an instance of a subclass of the tool's own class, so
its name, schema, description, injected arguments and ``response_format`` are the tool's own,
and it works wherever a tool does (``invoke``, ``ainvoke``, LangGraph's ``ToolNode``,
``create_agent``). Only ``run``/``arun`` change: inside a run, a call that completed in an
earlier attempt returns its recorded output (a ``ToolMessage`` keeps its ``tool_call_id``)
without running, and fires the callbacks ``BaseTool.run`` fires (``on_tool_start``, then
``on_tool_end`` with that output), its run's metadata marked ``tidebase_replayed``; a new call
runs as a step (``durable_call``), LangChain's own ``run`` firing its callbacks. A call
that raises raises its own exception; only a ``ToolException`` is checkpointed as an outcome.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.runnables import RunnableConfig, ensure_config
from langchain_core.tools import BaseTool, StructuredTool, Tool, ToolException

from tidebase_core.errors import TidebaseError
from tidebase_core.operations import ErrorCodec, Operation, durable_call, durable_call_sync
from tidebase_core.plugin import AnyRunContext, StepPolicy, current_run, input_hash
from tidebase_core.replay import ReplayMode
from tidebase_core.retry import RetryPolicy

from .codec import REPLAYED_TOOL, dump_value, load_value

__all__ = [
    "DurableTool",
    "ReplayedCall",
    "ToolPolicy",
    "call_async",
    "call_sync",
    "durable_tool",
    "durable_tools",
    "replayed_tool_call",
]

IdempotencyKey = str | Callable[[Any, str | None], str]
"""A string, or a function of the call's arguments and ``tool_call_id`` returning one."""

T = TypeVar("T", bound=BaseTool)


@dataclass(frozen=True, slots=True)
class ToolPolicy:
    """What a tool declared about its calls (see ``run.step``'s arguments of the same names)."""

    side_effects: tuple[str, ...] | None = None
    idempotency_key: IdempotencyKey | None = None
    replay: ReplayMode | None = None
    retries: int | RetryPolicy = 0

    def for_call(self, name: str, args: Any, tool_call_id: str | None) -> StepPolicy:
        key = self.idempotency_key
        if callable(key):
            key = key(args, tool_call_id)
        return StepPolicy.build(
            f"tool {name}",
            side_effects=self.side_effects,
            idempotency_key=key,
            replay=self.replay,
            retries=self.retries,
        )


PLAIN = ToolPolicy()


def _sync_only(tool: Any) -> bool:
    """A ``StructuredTool`` or ``Tool`` made from a plain function (no ``coroutine``)."""
    return isinstance(tool, StructuredTool | Tool) and tool.coroutine is None


class DurableTool:
    """Base of the classes ``durable_tool`` makes: ``Durable<Tool>(DurableTool, <Tool>)``."""

    tidebase_policy: ClassVar[ToolPolicy] = PLAIN

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Any:
        if current_run() is not None and _sync_only(self):
            # LangChain runs a sync-only tool's whole ``invoke`` in a worker thread, whose
            # checkpoint then went through a blocking connection of its own (a pool checkout
            # per call, 2.5 ms here). ``BaseTool``'s path checkpoints the call in ``arun``, on
            # the run's own connection, and runs only the function in the thread.
            return await BaseTool.ainvoke(self, input, config, **kwargs)  # type: ignore[arg-type]
        return await super().ainvoke(input, config, **kwargs)  # type: ignore[misc]

    def run(
        self,
        tool_input: str | dict[str, Any],
        *args: Any,
        config: RunnableConfig | None = None,
        tool_call_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        run_tool: Callable[..., Any] = super().run  # type: ignore[misc]
        run = current_run()
        if run is None:
            return run_tool(tool_input, *args, config=config, tool_call_id=tool_call_id, **kwargs)

        def body() -> Any:
            config_with_run = _with_run(config, run)
            return run_tool(
                tool_input, *args, config=config_with_run, tool_call_id=tool_call_id, **kwargs
            )

        def replay() -> ReplayedCall:
            return self._run_arguments(tool_input, args, config, tool_call_id, kwargs)

        name, args_for_key = self._call_of(tool_input)
        return call_sync(run, name, args_for_key, tool_call_id, self.tidebase_policy, body, replay)

    async def arun(
        self,
        tool_input: str | dict[str, Any],
        *args: Any,
        config: RunnableConfig | None = None,
        tool_call_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        run_tool: Callable[..., Awaitable[Any]] = super().arun  # type: ignore[misc]
        run = current_run()
        if run is None:
            return await run_tool(
                tool_input, *args, config=config, tool_call_id=tool_call_id, **kwargs
            )

        async def body() -> Any:
            config_with_run = _with_run(config, run)
            return await run_tool(
                tool_input, *args, config=config_with_run, tool_call_id=tool_call_id, **kwargs
            )

        def replay() -> ReplayedCall:
            return self._run_arguments(tool_input, args, config, tool_call_id, kwargs)

        name, args_for_key = self._call_of(tool_input)
        return await call_async(
            run, name, args_for_key, tool_call_id, self.tidebase_policy, body, replay
        )

    def _run_arguments(
        self,
        tool_input: str | dict[str, Any],
        args: tuple[Any, ...],
        config: RunnableConfig | None,
        tool_call_id: str | None,
        kwargs: dict[str, Any],
    ) -> ReplayedCall:
        """The call as LangChain's ``BaseTool.run`` received it (verbose, colors, callbacks,
        tags, metadata, run name and id, extra callback arguments)."""
        assert isinstance(self, BaseTool)
        bound = _RUN.bind(
            self, tool_input, *args, config=config, tool_call_id=tool_call_id, **kwargs
        )
        bound.apply_defaults()
        return ReplayedCall(self, bound.arguments)

    def _call_of(self, tool_input: str | dict[str, Any]) -> tuple[str, Any]:
        """The tool's name and the arguments that identify a call: those the model gives
        (``tool_call_schema``), not injected ones such as ``ToolRuntime`` or the call id."""
        assert isinstance(self, BaseTool)
        if not isinstance(tool_input, dict):
            return self.name, tool_input
        schema = self.tool_call_schema
        given = (
            schema.get("properties", {})
            if isinstance(schema, dict)
            else getattr(schema, "model_fields", {})
        )
        return self.name, {k: v for k, v in tool_input.items() if k in given}


_RUN = inspect.signature(BaseTool.run)


@dataclass(frozen=True, slots=True)
class ReplayedCall:
    """A replayed tool call, with the arguments ``BaseTool.run`` takes (``_RUN``'s names)."""

    tool: BaseTool
    arguments: Mapping[str, Any]

    def start(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``CallbackManager.configure`` and ``on_tool_start`` arguments, as ``BaseTool.run``
        gives them, the run's metadata marking it replayed."""
        tool, a = self.tool, self.arguments
        tool_input = a["tool_input"]
        # Injected arguments (a ToolRuntime, the call id) are left out, as LangChain does.
        filter_injected = getattr(tool, "_filter_injected_args", None)
        shown = (
            filter_injected(tool_input)
            if filter_injected and isinstance(tool_input, dict)
            else None
        )
        configure = {
            "inheritable_callbacks": a["callbacks"],
            "local_callbacks": tool.callbacks,
            "verbose": tool.verbose or bool(a["verbose"]),
            "inheritable_tags": a["tags"],
            "local_tags": tool.tags,
            "inheritable_metadata": a["metadata"],
            "local_metadata": {**(tool.metadata or {}), REPLAYED_TOOL: True},
        }
        start = {
            "serialized": {"name": tool.name, "description": tool.description},
            "input_str": tool_input
            if isinstance(tool_input, str)
            else str(shown if shown is not None else tool_input),
            "color": a["start_color"],
            "name": a["run_name"],
            "run_id": a["run_id"],
            "inputs": shown,
            "tool_call_id": a["tool_call_id"],
            **a["kwargs"],
        }
        return configure, start


def fire_replayed(call: ReplayedCall, outcome: Any) -> None:
    """Fire the callbacks LangChain fires for a live call (``on_tool_start``, then
    ``on_tool_end`` with the recorded output, or ``on_tool_error`` with the recorded
    exception), so tracers see a replayed call as they saw it run."""
    configure, start = call.start()
    run_manager = CallbackManager.configure(**configure).on_tool_start(**start)
    if isinstance(outcome, BaseException):
        run_manager.on_tool_error(outcome, tool_call_id=start["tool_call_id"])
    else:
        color, extra = call.arguments["color"], call.arguments["kwargs"]
        run_manager.on_tool_end(outcome, color=color, name=call.tool.name, **extra)


async def afire_replayed(call: ReplayedCall, outcome: Any) -> None:
    """``fire_replayed`` on LangChain's async callback manager."""
    configure, start = call.start()
    run_manager = await AsyncCallbackManager.configure(**configure).on_tool_start(**start)
    if isinstance(outcome, BaseException):
        await run_manager.on_tool_error(outcome, tool_call_id=start["tool_call_id"])
    else:
        color, extra = call.arguments["color"], call.arguments["kwargs"]
        await run_manager.on_tool_end(outcome, color=color, name=call.tool.name, **extra)


TOOL_ERRORS = ErrorCodec(ToolException)
"""A ``ToolException`` is the tool's answer (LangChain turns it into a message when the tool
handles errors): recorded, and raised again on replay when the run went on past it."""


def tool_operation(name: str, policy: StepPolicy) -> Operation[Any]:
    """The operation spec of one call of tool ``name``."""
    return Operation(
        f"langchain.tool.{_segment(name)}",
        dump=dump_value,
        load=load_value,
        errors=TOOL_ERRORS,
        policy=policy,
    )


def tool_key(name: str, args: Any, tool_call_id: str | None) -> tuple[str, str | None]:
    """A tool call's input hash, and its identity: the ``tool_call_id`` of the (replayed)
    model message when there is one (LangGraph runs a turn's tool calls in parallel), else
    None: keyed by order of occurrence."""
    digest = input_hash({"tool": name, "args": args}, what=f"arguments of tool {name!r}")
    return digest, None if tool_call_id is None else _segment(tool_call_id)


def _segment(text: str) -> str:
    return text.replace("#", "_")  # `#` separates occurrences in keys


def call_sync(
    run: AnyRunContext,
    name: str,
    args: Any,
    tool_call_id: str | None,
    policy: ToolPolicy,
    body: Callable[[], Any],
    replay: Callable[[], ReplayedCall | None],
) -> Any:
    """Replay a tool call's checkpoint, or run ``body`` as a step (the rule for tools, sync).

    A replayed call fires the callbacks of ``replay()`` (the call as LangChain's ``run`` got
    it; None: none), since ``body``, which fires them live, does not run. A tool that raises
    raises its own exception (LangChain and LangGraph handle tool errors by type); the failure
    is recorded on the step, and a retry (or the resumed run) runs it.
    """
    digest, identity = tool_key(name, args, tool_call_id)
    op = tool_operation(name, policy.for_call(name, args, tool_call_id))
    ran = False

    def running() -> Any:
        nonlocal ran
        ran = True
        return body()

    try:
        output = durable_call_sync(op, running, digest=digest, identity=identity, run=run)
    except Exception as exc:
        call = None if ran or isinstance(exc, TidebaseError) else replay()
        if call is not None:  # a recorded ToolException, raised again
            fire_replayed(call, exc)
        raise
    call = None if ran else replay()
    if call is not None:
        fire_replayed(call, output)
    return output


async def call_async(
    run: AnyRunContext,
    name: str,
    args: Any,
    tool_call_id: str | None,
    policy: ToolPolicy,
    body: Callable[[], Awaitable[Any]],
    replay: Callable[[], ReplayedCall | None],
) -> Any:
    """``call_sync`` for an async tool body."""
    digest, identity = tool_key(name, args, tool_call_id)
    op = tool_operation(name, policy.for_call(name, args, tool_call_id))
    ran = False

    async def running() -> Any:
        nonlocal ran
        ran = True
        return await body()

    try:
        output = await durable_call(op, running, digest=digest, identity=identity, run=run)
    except Exception as exc:
        call = None if ran or isinstance(exc, TidebaseError) else replay()
        if call is not None:  # a recorded ToolException, raised again
            await afire_replayed(call, exc)
        raise
    call = None if ran else replay()
    if call is not None:
        await afire_replayed(call, output)
    return output


def replayed_tool_call(
    tool: BaseTool | None, tool_call: Mapping[str, Any], config: RunnableConfig | None
) -> ReplayedCall | None:
    """A tool call LangGraph's ``ToolNode`` makes with ``tool.invoke(call, config)``, as
    ``BaseTool.invoke`` hands it to ``run`` (None for a tool the node does not have)."""
    if tool is None:
        return None
    config = ensure_config(config)
    bound = _RUN.bind(
        tool,
        dict(tool_call.get("args") or {}),
        callbacks=config.get("callbacks"),
        tags=config.get("tags"),
        metadata=config.get("metadata"),
        run_name=config.get("run_name"),
        run_id=config.get("run_id"),
        config=config,
        tool_call_id=tool_call.get("id"),
    )
    bound.apply_defaults()
    return ReplayedCall(tool, bound.arguments)


def _with_run(config: RunnableConfig | None, run: AnyRunContext) -> RunnableConfig:
    """The tool's config, carrying the run (``config["configurable"]["tidebase_run"]``)."""
    config = config or {}
    configurable = {**config.get("configurable", {}), "tidebase_run": run}
    return {**config, "configurable": configurable}


_classes: dict[tuple[type, ToolPolicy], type] = {}


def durable_tool(
    tool: T,
    *,
    side_effects: Sequence[str] | None = None,
    idempotency_key: IdempotencyKey | None = None,
    replay: ReplayMode | None = None,
    retries: int | RetryPolicy = 0,
) -> T:
    """A copy of ``tool`` whose calls inside a run are checkpointed steps.

    Declare what a call does to the world as ``run.step`` does: ``side_effects=["email"]``
    with an ``idempotency_key`` (a string, or a function of the call's arguments and
    ``tool_call_id``), or ``replay="manual"``/``"never"``. A call with side effects and no key
    is parked for review if its process dies while it runs, instead of running twice. A tool
    that is durable already is returned as it is unless new declarations are given.
    """
    if not isinstance(tool, BaseTool):
        what = getattr(tool, "__name__", type(tool).__name__)
        raise TypeError(
            f"durable_tool() takes a LangChain tool (BaseTool), got {what!r}; make it one "
            "with langchain_core.tools.tool (@tool) or StructuredTool.from_function first"
        )
    policy = _policy(tool.name, side_effects, idempotency_key, replay, retries)
    if isinstance(tool, DurableTool) and policy == PLAIN:
        return tool
    own_class = next(c for c in type(tool).__mro__ if not issubclass(c, DurableTool))
    cls = _classes.get((own_class, policy))
    if cls is None:
        cls = _classes[(own_class, policy)] = type(
            f"Durable{own_class.__name__}",
            (DurableTool, own_class),
            {
                "__module__": __name__,
                "__annotations__": {"tidebase_policy": ClassVar[ToolPolicy]},
                "tidebase_policy": policy,
            },
        )
    durable = copy.copy(tool)
    object.__setattr__(durable, "__class__", cls)  # the same fields, the durable run/arun
    return durable


def durable_tools(
    tools: Sequence[BaseTool],
    *,
    side_effects: Mapping[str, Sequence[str]] | None = None,
    idempotency_key: Mapping[str, IdempotencyKey] | None = None,
) -> list[BaseTool]:
    """``durable_tool`` for each tool, with declarations by tool name, for instance
    ``durable_tools([search, save], side_effects={"save": ["db"]})``."""
    if isinstance(tools, BaseTool) or not isinstance(tools, Sequence):
        raise TypeError(
            f"durable_tools() takes a list of tools, got {type(tools).__name__}; "
            "for a single tool use durable_tool(tool)"
        )
    names = [getattr(t, "name", repr(t)) for t in tools]
    effects, keys = side_effects or {}, idempotency_key or {}
    for what, given in (("side_effects", effects), ("idempotency_key", keys)):
        unknown = sorted(set(given) - set(names))
        if unknown:
            raise ValueError(
                f"durable_tools(): {what} names {unknown}, which are not in the list "
                f"(its tools: {names}); use the tools' names"
            )
    return [
        durable_tool(tool, side_effects=effects.get(name), idempotency_key=keys.get(name))
        for tool, name in zip(tools, names, strict=True)
    ]


def _policy(
    name: str,
    side_effects: Sequence[str] | None,
    idempotency_key: IdempotencyKey | None,
    replay: ReplayMode | None,
    retries: int | RetryPolicy,
) -> ToolPolicy:
    """The declarations, checked now rather than at the tool's first call."""
    if side_effects is not None and (
        isinstance(side_effects, str) or not all(isinstance(e, str) for e in side_effects)
    ):
        raise TypeError(
            f"durable_tool({name!r}): side_effects must be a list of strings such as "
            f"['email'] or ['read'], got {side_effects!r}"
        )
    if idempotency_key is not None and not (
        isinstance(idempotency_key, str) or callable(idempotency_key)
    ):
        raise TypeError(
            f"durable_tool({name!r}): idempotency_key must be a string or a function of "
            f"(args, tool_call_id) returning one, got {type(idempotency_key).__name__}"
        )
    effects = None if side_effects is None else tuple(side_effects)
    StepPolicy.build(  # raises on a bad replay mode or retries
        f"tool {name}",
        side_effects=effects,
        idempotency_key=idempotency_key if isinstance(idempotency_key, str) else None,
        replay=replay,
        retries=retries,
    )
    return ToolPolicy(effects, idempotency_key, replay, retries)
