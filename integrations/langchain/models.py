"""Durable chat-model calls: each call LangChain makes inside a run is one durable operation.

``install()`` wraps ``BaseChatModel._generate_with_cache``/``_agenerate_with_cache``, the one
place every ``invoke``/``batch``/``generate`` (and a chain's or LangGraph node's call) goes
through, as ``durable_call_sync``/``durable_call``; and ``stream``/``astream``, which bypass
it, as the core's ``durable_stream_sync``/``durable_stream``. Inside a run a call that
completed in an earlier attempt returns its recorded result from inside LangChain's generate
path (a replayed stream: through ``invoke``/``ainvoke``), so LangChain fires its
callbacks (``on_chat_model_start``/``on_llm_end``) and builds its output as for a live call;
a new call runs and is checkpointed with its usage. A model built with ``cache=False`` runs on
every attempt, uncheckpointed: only its usage is written, once per real call. Outside a run
everything is LangChain's own.

Keys. A model call is keyed by its order of occurrence in its scope (``langchain.model``,
``langchain.model#2``, ``tool-step/langchain.model``), with the call's content as the input
hash: a changed prompt at the same place raises ``InputMismatch``. Where LangChain or
LangGraph run calls concurrently (``batch``/``abatch``, ``RunnableParallel``, the nodes of a
LangGraph super-step that runs several: each in a thread or task of its own, sharing the
scope), their order is not stable, their content is: there the key is the content
(``langchain.model.<digest>``).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import aclosing, contextmanager
from contextvars import Context, ContextVar
from typing import Any

import wrapt
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    message_chunk_to_message,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import base
from langchain_core.runnables.config import ContextThreadPoolExecutor, ensure_config

from tidebase_core import AsyncRunContext
from tidebase_core.errors import TidebaseError
from tidebase_core.keys import current_strand
from tidebase_core.operations import (
    ErrorCodec,
    Operation,
    Usage,
    durable_call,
    durable_call_sync,
    durable_stream,
    durable_stream_sync,
)
from tidebase_core.plugin import AnyRunContext, current_run, record_usage_sync

from .codec import CHECKPOINTED, LEDGERED, MARK, REPLAYED, dump_result, load_result, mark
from .digests import prompt_digest
from .usage import usage_rows

__all__ = [
    "MODEL_ERRORS",
    "content_identity",
    "content_keyed",
    "model_operation",
    "owned",
    "owning",
    "wrap_models",
]

MODEL_CALL = "langchain.model"

# Set while a writer that checkpoints a model call itself (TidebaseMiddleware, a durable
# stream) runs it: the wrapped call inside stands aside, and the callback handler leaves the
# usage to the writer. One call is one checkpoint and one ledger row.
_owned: ContextVar[bool] = ContextVar("tidebase_langchain_owned", default=False)

# A replayed stream's result, answered by the wrapped call ``invoke`` makes for it (so
# LangChain fires the callbacks of the replayed call as for a live one).
_answer: ContextVar[ChatResult | None] = ContextVar("tidebase_langchain_answer", default=None)


def owned() -> bool:
    return _owned.get()


@contextmanager
def owning() -> Iterator[None]:
    token = _owned.set(True)
    try:
        yield
    finally:
        _owned.reset(token)


class ModelErrors(ErrorCodec):
    """A model call's failures are outcomes: a provider's 503 the workflow retried
    (``with_retry``) or fell back on is raised again on replay, as the exception's own class
    when it is imported (never imported by name), so the calls after it keep their keys.
    Tidebase's own errors (a cancel, a lost lease) are never an outcome."""

    def __init__(self) -> None:
        super().__init__(Exception)

    def records(self, exc: BaseException) -> bool:
        return not isinstance(exc, TidebaseError) and super().records(exc)


MODEL_ERRORS = ModelErrors()

_operations: dict[tuple[str | None, str | None, str | None], Operation[ChatResult]] = {}


def model_operation(
    provider: str | None, model: str | None, agent: str | None = None
) -> Operation[ChatResult]:
    """The operation spec of a chat-model call (usage rows fall back to this model's name, and
    name the agent that made it)."""
    op = _operations.get((provider, model, agent))
    if op is None:

        def usage(result: ChatResult) -> list[Usage]:
            messages = (g.message for g in result.generations)
            return usage_rows(messages, provider, model, agent)

        op = _operations.setdefault(
            (provider, model, agent),
            Operation(
                MODEL_CALL, dump=dump_result, load=load_result, usage=usage, errors=MODEL_ERRORS
            ),
        )
    return op


# Set where LangChain or LangGraph run work concurrently in the caller's key scope: work their
# thread pool runs (``batch``, ``RunnableParallel``, LangGraph's parallel nodes), ``abatch``,
# ``RunnableParallel.ainvoke``, and the tasks of LangGraph's async parallel nodes.
_concurrent: ContextVar[bool] = ContextVar("tidebase_langchain_concurrent", default=False)


def content_identity(digest: str) -> str | None:
    """``digest`` (short) where the framework runs this call concurrently with others (their
    order is not stable, their content is), else None: keyed by order of occurrence."""
    return digest[:16] if _concurrent.get() else None


@contextmanager
def content_keyed(identity: str | None) -> Iterator[None]:
    """Take a content key without the race detector: two concurrent calls with the same
    content (``abatch(["a", "b", "a"])``) have the same input, so which of them gets ``#2``
    does not matter, and the detector would refuse them."""
    if identity is None:
        yield
        return
    strand = current_strand.get()
    token = current_strand.set(None)
    try:
        yield
    finally:
        current_strand.reset(token)
        if strand is not None:
            strand.allocated += 1  # it did take a key: the detector's rules count keys taken


def _model_names(model: BaseChatModel, stop: Any, kwargs: dict[str, Any]) -> tuple[Any, Any]:
    params = model._get_ls_params(stop=stop, **kwargs)
    return params.get("ls_provider"), params.get("ls_model_name")


def agent_name(metadata: Mapping[str, Any] | None) -> str | None:
    """The ``create_agent(name=...)`` agent a call is made for (LangChain puts it in the
    metadata of the agent's runs), for the ledger's usage by agent."""
    name = (metadata or {}).get("lc_agent_name")
    return name if isinstance(name, str) and name else None


def _call_of(
    model: BaseChatModel,
    messages: list[BaseMessage],
    stop: Any,
    kwargs: dict[str, Any],
    metadata: Mapping[str, Any] | None,
) -> tuple[Operation[ChatResult], str, str | None]:
    digest = prompt_digest(messages, model._get_llm_string(stop=stop, **kwargs))
    op = model_operation(*_model_names(model, stop, kwargs), agent_name(metadata))
    return op, digest, content_identity(digest)


# -- invoke / batch / generate ----------------------------------------------------------------


def _generate_with_cache(
    wrapped: Callable[..., ChatResult],
    model: BaseChatModel,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> ChatResult:
    answer = _answer.get()
    if answer is not None:
        _answer.set(None)
        return answer
    run = current_run()
    if run is None:
        return wrapped(*args, **kwargs)
    if model.cache is False:
        return _ledger_uncached_sync(run, model, wrapped(*args, **kwargs), args, kwargs)
    if _owned.get():
        return mark(wrapped(*args, **kwargs), CHECKPOINTED)
    messages, stop, rest, metadata = _arguments(args, kwargs)
    op, digest, identity = _call_of(model, messages, stop, rest, metadata)
    op, kwargs = _watching_chunks(model, op, kwargs, async_api=False)
    with content_keyed(identity):
        result = durable_call_sync(
            op, lambda: wrapped(*args, **kwargs), digest=digest, identity=identity, run=run
        )
    return mark(result, CHECKPOINTED) if result.generations and not _is_replayed(result) else result


async def _agenerate_with_cache(
    wrapped: Callable[..., Any],
    model: BaseChatModel,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> ChatResult:
    answer = _answer.get()
    if answer is not None:
        _answer.set(None)
        return answer
    run = current_run()
    if run is None:
        result: ChatResult = await wrapped(*args, **kwargs)
        return result
    if model.cache is False:
        uncached: ChatResult = await wrapped(*args, **kwargs)
        return await _ledger_uncached(run, model, uncached, args, kwargs)
    if _owned.get():
        return mark(await wrapped(*args, **kwargs), CHECKPOINTED)
    messages, stop, rest, metadata = _arguments(args, kwargs)
    op, digest, identity = _call_of(model, messages, stop, rest, metadata)
    op, kwargs = _watching_chunks(model, op, kwargs, async_api=True)

    async def call() -> ChatResult:
        out: ChatResult = await wrapped(*args, **kwargs)
        return out

    with content_keyed(identity):
        result = await durable_call(op, call, digest=digest, identity=identity, run=run)
    return mark(result, CHECKPOINTED) if result.generations and not _is_replayed(result) else result


def _ledger_uncached_sync(
    run: AnyRunContext,
    model: BaseChatModel,
    result: ChatResult,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> ChatResult:
    """A ``cache=False`` model's real call: no checkpoint, its usage written now. Under a
    writer that owns the call (the middleware) the writer records it."""
    if _owned.get():
        return result
    _write_usage_sync(run, _usage_of(model, result, *_arguments(args, kwargs)[1:]))
    return mark(result, LEDGERED)


async def _ledger_uncached(
    run: AnyRunContext,
    model: BaseChatModel,
    result: ChatResult,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> ChatResult:
    if _owned.get():
        return result
    await _write_usage(run, _usage_of(model, result, *_arguments(args, kwargs)[1:]))
    return mark(result, LEDGERED)


def _usage_of(
    model: BaseChatModel,
    result: ChatResult,
    stop: Any,
    kwargs: dict[str, Any],
    metadata: Mapping[str, Any] | None,
) -> list[Usage]:
    messages = (g.message for g in result.generations)
    return usage_rows(messages, *_model_names(model, stop, kwargs), agent_name(metadata))


def _write_usage_sync(run: AnyRunContext, rows: Sequence[Usage]) -> None:
    for row in rows:
        record_usage_sync(run, **row.fields())


async def _write_usage(run: AnyRunContext, rows: Sequence[Usage]) -> None:
    """On the run's own connection when the run is async (no second connection)."""
    if not isinstance(run, AsyncRunContext):
        _write_usage_sync(run, rows)
        return
    for row in rows:
        await run.usage.record(**row.fields())


def _watching_chunks(
    model: BaseChatModel, op: Operation[ChatResult], kwargs: dict[str, Any], *, async_api: bool
) -> tuple[Operation[ChatResult], dict[str, Any]]:
    """A stream LangChain runs inside ``invoke`` (for streaming callbacks: ``astream_events``
    over a chain, LangGraph's messages mode, ``create_agent``) hands its chunks only to the
    call's run manager. Watch them there: if the stream fails midway, the usage its chunks
    reported was paid for and goes in the ledger with the failure (``Operation.spent``)."""
    manager = kwargs.get("run_manager")
    if manager is None or not model._should_stream(
        async_api=async_api, **{k: v for k, v in kwargs.items() if k not in ("stop", "messages")}
    ):
        return op, kwargs
    seen = _Seen(op)
    watched = copy.copy(manager)
    forward = manager.on_llm_new_token

    def note(chunk: Any) -> None:
        if chunk is not None and isinstance(chunk.message, BaseMessageChunk):
            seen.add(chunk.message)

    if async_api:

        async def on_new_token(token: Any, *, chunk: Any = None, **more: Any) -> Any:
            note(chunk)
            return await forward(token, chunk=chunk, **more)

    else:

        def on_new_token(token: Any, *, chunk: Any = None, **more: Any) -> Any:  # type: ignore[misc]
            note(chunk)
            return forward(token, chunk=chunk, **more)

    watched.on_llm_new_token = on_new_token
    return dataclasses.replace(op, spent=lambda _: seen.spent()), {
        **kwargs,
        "run_manager": watched,
    }


def _is_replayed(result: ChatResult) -> bool:
    return (result.generations[0].generation_info or {}).get(MARK) == REPLAYED


def _arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[BaseMessage], Any, dict[str, Any], Mapping[str, Any] | None]:
    """``(messages, stop, run_manager, **kwargs)`` → messages, stop, the model kwargs, and the
    call's metadata (which names the agent)."""
    rest = dict(kwargs)
    messages = args[0] if args else rest.pop("messages")
    stop = args[1] if len(args) > 1 else rest.pop("stop", None)
    run_manager = args[2] if len(args) > 2 else rest.pop("run_manager", None)
    return messages, stop, rest, getattr(run_manager, "metadata", None)


# -- stream / astream -------------------------------------------------------------------------


def _stream(
    wrapped: Callable[..., Generator[BaseMessageChunk, None, None]],
    model: BaseChatModel,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Generator[BaseMessageChunk, None, None]:
    run = current_run()
    if run is None or _owned.get():
        return wrapped(*args, **kwargs)
    if model.cache is False:
        _, stop, rest, metadata = _stream_arguments(model, args, kwargs)
        return _ledgered_stream(
            run, wrapped(*args, **kwargs), lambda r: _usage_of(model, r, stop, rest, metadata)
        )
    op, digest, identity = _stream_operation(model, args, kwargs)
    seen = _Seen(op)

    def live() -> Iterator[BaseMessageChunk | _Done]:
        chunks = wrapped(*args, **kwargs)
        try:
            while True:
                with owning():  # the stream's callbacks fire inside next()
                    chunk = next(chunks, None)
                if chunk is None:
                    break
                seen.add(chunk)
                yield chunk
        finally:
            with owning():
                chunks.close()
        if seen.merged is not None:
            yield _Done(_result(seen.merged))

    with content_keyed(identity):  # the sync stream takes its key now, in program order
        events = durable_stream_sync(
            op,
            live,
            digest=digest,
            result_of=_done,
            replay=lambda result: [_Replay(result)],
            spent=seen.spent,
            identity=identity,
            run=run,
        )
    return _chunks(model, events, args, kwargs)


def _chunks(
    model: BaseChatModel,
    events: Iterator[BaseMessageChunk | _Done | _Replay],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Generator[BaseMessageChunk, None, None]:
    try:
        for event in events:
            if isinstance(event, _Replay):
                token = _answer.set(
                    event.result
                )  # invoke answers: callbacks fire as for a live call
                try:
                    message = model.invoke(*args, **kwargs)
                finally:
                    _answer.reset(token)
                yield _chunk(message)
            elif not isinstance(event, _Done):
                yield event
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()  # abandoned: the core writes what the stream had spent, and closes it


def _astream(
    wrapped: Callable[..., AsyncGenerator[BaseMessageChunk, None]],
    model: BaseChatModel,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncGenerator[BaseMessageChunk, None]:
    run = current_run()
    if run is None or _owned.get():
        return wrapped(*args, **kwargs)
    if model.cache is False:
        _, stop, rest, metadata = _stream_arguments(model, args, kwargs)
        return _aledgered_stream(
            run, wrapped(*args, **kwargs), lambda r: _usage_of(model, r, stop, rest, metadata)
        )
    op, digest, identity = _stream_operation(model, args, kwargs)
    return _durable_astream(run, op, digest, identity, model, wrapped, args, kwargs)


def _stream_arguments(
    model: BaseChatModel, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[list[BaseMessage], Any, dict[str, Any], Mapping[str, Any] | None]:
    """``(input, config, stop, **kwargs)`` of a stream → messages, stop, the model kwargs and
    the call's metadata: what LangChain's generate path sees."""
    rest = dict(kwargs)
    model_input = args[0] if args else rest.pop("input")
    config = ensure_config(args[1] if len(args) > 1 else rest.pop("config", None))
    stop = rest.pop("stop", None)
    messages = model._convert_input(model_input).to_messages()
    return messages, stop, rest, config.get("metadata")


def _stream_operation(
    model: BaseChatModel, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Operation[ChatResult], str, str | None]:
    """The operation, hash and identity of a stream."""
    return _call_of(model, *_stream_arguments(model, args, kwargs))


def _ledgered_stream(
    run: AnyRunContext,
    chunks: Generator[BaseMessageChunk, None, None],
    usage: Callable[[ChatResult], list[Usage]],
) -> Generator[BaseMessageChunk, None, None]:
    """A ``cache=False`` model's stream, uncheckpointed: the usage its chunks reported is
    written when it ends, fails or is abandoned (paid for all the same). Its callbacks fire
    owned, so a callback handler leaves that usage to this."""
    merged: BaseMessageChunk | None = None
    try:
        while True:
            with owning():
                chunk = next(chunks, None)
            if chunk is None:
                break
            merged = chunk if merged is None else merged + chunk
            yield chunk
    finally:
        with owning():
            chunks.close()
        if merged is not None:
            _write_usage_sync(run, usage(_result(merged)))


async def _aledgered_stream(
    run: AnyRunContext,
    chunks: AsyncGenerator[BaseMessageChunk, None],
    usage: Callable[[ChatResult], list[Usage]],
) -> AsyncGenerator[BaseMessageChunk, None]:
    merged: BaseMessageChunk | None = None
    try:
        while True:
            with owning():
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
            merged = chunk if merged is None else merged + chunk
            yield chunk
    finally:
        with owning():
            await chunks.aclose()
        if merged is not None:
            await _write_usage(run, usage(_result(merged)))


class _Seen:
    """A live stream's chunks so far, merged: its result when it ends, and, if it fails or is
    stopped first, the usage they reported (paid for all the same)."""

    __slots__ = ("merged", "op")

    def __init__(self, op: Operation[ChatResult]) -> None:
        self.op = op
        self.merged: BaseMessageChunk | None = None

    def add(self, chunk: BaseMessageChunk) -> None:
        self.merged = chunk if self.merged is None else self.merged + chunk

    def spent(self) -> list[Usage]:
        if self.merged is None or self.op.usage is None:
            return []
        return list(self.op.usage(_result(self.merged)))


class _Done:
    """The last event of a live stream: its merged result, which completes the call."""

    __slots__ = ("result",)

    def __init__(self, result: ChatResult) -> None:
        self.result = result


class _Replay:
    """A replayed stream's one event: answered by ``invoke``/``ainvoke`` so callbacks fire."""

    __slots__ = ("result",)

    def __init__(self, result: ChatResult) -> None:
        self.result = result


def _done(event: BaseMessageChunk | _Done | _Replay) -> ChatResult | None:
    return event.result if isinstance(event, _Done) else None


async def _durable_astream(
    run: AnyRunContext,
    op: Operation[ChatResult],
    digest: str,
    identity: str | None,
    model: BaseChatModel,
    wrapped: Callable[..., AsyncGenerator[BaseMessageChunk, None]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncGenerator[BaseMessageChunk, None]:
    seen = _Seen(op)

    async def live() -> AsyncIterator[BaseMessageChunk | _Done]:
        chunks = wrapped(*args, **kwargs)
        try:
            while True:
                with owning():  # the stream's callbacks fire inside anext()
                    try:
                        chunk = await anext(chunks)
                    except StopAsyncIteration:
                        break
                seen.add(chunk)
                yield chunk
        finally:
            with owning():
                await chunks.aclose()
        if seen.merged is not None:
            yield _Done(_result(seen.merged))

    stream = durable_stream(
        op,
        live,
        digest=digest,
        result_of=_done,
        replay=lambda result: [_Replay(result)],
        spent=seen.spent,
        identity=identity,
        run=run,
    )
    async with aclosing(stream):  # abandoned: the core writes what it had spent, and closes it
        with content_keyed(identity):  # the key is taken in the first step
            event: Any = await anext(stream, None)
        while event is not None:
            if isinstance(event, _Replay):
                token = _answer.set(event.result)  # set and reset within one step: no yield
                try:
                    message = await model.ainvoke(*args, **kwargs)
                finally:
                    _answer.reset(token)
                yield _chunk(message)
            elif not isinstance(event, _Done):
                yield event
            event = await anext(stream, None)


def _result(merged: BaseMessageChunk) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message_chunk_to_message(merged))])


def _chunk(message: BaseMessage) -> BaseMessageChunk:
    """The replayed message as the one chunk of its stream."""
    if not isinstance(message, AIMessage):
        raise TypeError(f"a chat model stream replayed a {type(message).__name__}")
    return AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        response_metadata=message.response_metadata,
        id=message.id,
        name=message.name,
        tool_calls=message.tool_calls,
        invalid_tool_calls=message.invalid_tool_calls,
        usage_metadata=message.usage_metadata,
        chunk_position="last",
    )


def _concurrently(fn: Callable[..., Any]) -> Callable[..., Any]:
    def run_concurrently(*args: Any, **kwargs: Any) -> Any:
        token = _concurrent.set(True)
        try:
            return fn(*args, **kwargs)
        finally:
            _concurrent.reset(token)

    return run_concurrently


def _submit(
    wrapped: Callable[..., Any],
    executor: ContextThreadPoolExecutor,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    if current_run() is None or not args:
        return wrapped(*args, **kwargs)
    func, *rest = args
    if isinstance(getattr(func, "__self__", None), Context) and rest:
        # ``submit(ctx.run, fn, ...)`` (LangGraph): mark inside the context ``fn`` runs in.
        return wrapped(func, _concurrently(rest[0]), *rest[1:], **kwargs)
    return wrapped(_concurrently(func), *rest, **kwargs)


def _marking(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Calls ``wrapped`` with the marker set: the tasks it creates (or the context it copies
    for them) carry it."""
    if current_run() is None:
        return wrapped(*args, **kwargs)
    token = _concurrent.set(True)
    try:
        return wrapped(*args, **kwargs)
    finally:
        _concurrent.reset(token)


def _mark_langgraph_async_nodes() -> None:
    """LangGraph's async executor ``submit`` copies the context into the task of each node of
    a parallel super-step: marked there. A plain function, not a wrapt wrapper: LangGraph
    keeps the bound method in a ``WeakMethod``."""
    try:
        from langgraph.pregel._executor import AsyncBackgroundExecutor
    except ImportError:  # LangGraph is optional (and this executor is internal)
        return
    submit = AsyncBackgroundExecutor.submit

    def marked_submit(self: Any, *args: Any, **kwargs: Any) -> Any:
        return _marking(functools.partial(submit, self), self, args, kwargs)

    AsyncBackgroundExecutor.submit = marked_submit  # type: ignore[method-assign]


async def _amarking(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if current_run() is None:
        return await wrapped(*args, **kwargs)
    token = _concurrent.set(True)
    try:
        return await wrapped(*args, **kwargs)
    finally:
        _concurrent.reset(token)


def _map(
    wrapped: Callable[..., Any],
    executor: ContextThreadPoolExecutor,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    if current_run() is None or not args:
        return wrapped(*args, **kwargs)
    return wrapped(_concurrently(args[0]), *args[1:], **kwargs)


_wrapped = False


def wrap_models() -> None:
    """Wrap ``BaseChatModel``'s generate path and streams, and LangChain's thread pool (once
    per process)."""
    global _wrapped
    if not _wrapped:
        wrapt.wrap_function_wrapper(ContextThreadPoolExecutor, "submit", _submit)
        wrapt.wrap_function_wrapper(ContextThreadPoolExecutor, "map", _map)
        # `abatch` (and `abatch_as_completed`) gather through this helper.
        wrapt.wrap_function_wrapper(base, "gather_with_concurrency", _amarking)
        wrapt.wrap_function_wrapper(base.RunnableParallel, "ainvoke", _amarking)
        _mark_langgraph_async_nodes()
        wrapt.wrap_function_wrapper(BaseChatModel, "_generate_with_cache", _generate_with_cache)
        wrapt.wrap_function_wrapper(BaseChatModel, "_agenerate_with_cache", _agenerate_with_cache)
        wrapt.wrap_function_wrapper(BaseChatModel, "stream", _stream)
        wrapt.wrap_function_wrapper(BaseChatModel, "astream", _astream)
        _wrapped = True
