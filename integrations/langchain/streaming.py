"""Durable ``stream()``/``astream()`` on chat models.

Streaming a model directly bypasses LangChain's cache, so ``install()`` wraps
``BaseChatModel.stream`` and ``astream``. Inside a run, a new stream streams as usual and is
checkpointed, with its usage, when it completes; a stream abandoned before its end is not
(it runs again on resume). A stream whose call completed in an earlier attempt is answered
by ``invoke``, which LangChain's cache path replays (callbacks fire as for any cached call),
as one chunk. Outside a run, and for a model built with ``cache=False``, streaming is
LangChain's own.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

import wrapt
from langchain_core.language_models import BaseChatModel
from langchain_core.load import dumps
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    BaseMessageChunk,
    message_chunk_to_message,
)
from langchain_core.outputs import ChatGeneration

from tidebase_core.plugin import AnyRunContext, current_run, save_checkpoint, save_checkpoint_sync

from .in_progress import ModelCall, claim, claimed
from .keys import Operation, model_call, prompt_digest
from .usage import usage_rows
from .values import Stored, dump_generations

__all__ = ["wrap_streaming"]

_wrapped = False


def wrap_streaming() -> None:
    """Wrap ``BaseChatModel.stream``/``astream`` (once per process)."""
    global _wrapped
    if not _wrapped:
        wrapt.wrap_function_wrapper(BaseChatModel, "stream", _stream)
        wrapt.wrap_function_wrapper(BaseChatModel, "astream", _astream)
        _wrapped = True


def _stream(
    wrapped: Callable[..., Generator[BaseMessageChunk, None, None]],
    model: BaseChatModel,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Generator[BaseMessageChunk, None, None]:
    run = current_run()
    if run is None or model.cache is False or claimed():
        return wrapped(*args, **kwargs)
    op = _operation(run, model, args, kwargs)
    if op.recorded():
        return _replayed(model, args, kwargs)
    return _durable_stream(run, op, wrapped, args, kwargs)


def _replayed(
    model: BaseChatModel, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Generator[BaseMessageChunk, None, None]:
    yield _chunk(model.invoke(*args, **kwargs))


def _astream(
    wrapped: Callable[..., AsyncGenerator[BaseMessageChunk, None]],
    model: BaseChatModel,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncGenerator[BaseMessageChunk, None]:
    run = current_run()
    if run is None or model.cache is False or claimed():
        return wrapped(*args, **kwargs)
    op = _operation(run, model, args, kwargs)
    if op.recorded():
        return _areplayed(model, args, kwargs)
    return _durable_astream(run, op, wrapped, args, kwargs)


async def _areplayed(
    model: BaseChatModel, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> AsyncGenerator[BaseMessageChunk, None]:
    yield _chunk(await model.ainvoke(*args, **kwargs))


def _durable_stream(
    run: AnyRunContext,
    op: Operation,
    wrapped: Callable[..., Generator[BaseMessageChunk, None, None]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Generator[BaseMessageChunk, None, None]:
    call = ModelCall()
    chunks = wrapped(*args, **kwargs)
    merged: BaseMessageChunk | None = None
    try:
        while True:
            with claim(call):  # the stream's callbacks fire inside next()
                chunk = next(chunks, None)
            if chunk is None:
                break
            merged = chunk if merged is None else merged + chunk
            yield chunk
    finally:
        with claim(call):
            chunks.close()
    if merged is not None:
        output, usage = _checkpoint(merged, call)
        save_checkpoint_sync(run, op.allocate(), op.digest, output, usage=usage)


async def _durable_astream(
    run: AnyRunContext,
    op: Operation,
    wrapped: Callable[..., AsyncGenerator[BaseMessageChunk, None]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncGenerator[BaseMessageChunk, None]:
    call = ModelCall()
    chunks = wrapped(*args, **kwargs)
    merged: BaseMessageChunk | None = None
    try:
        while True:
            with claim(call):
                try:
                    chunk = await anext(chunks)
                except StopAsyncIteration:
                    break
            merged = chunk if merged is None else merged + chunk
            yield chunk
    finally:
        with claim(call):
            await chunks.aclose()
    if merged is not None:
        output, usage = _checkpoint(merged, call)
        await save_checkpoint(run, op.allocate(), op.digest, output, usage=usage)


def _operation(
    run: AnyRunContext, model: BaseChatModel, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Operation:
    """The call's key and hash, from the same prompt and model LangChain's cache would see."""
    rest = dict(kwargs)
    model_input = args[0] if args else rest.pop("input")
    rest.pop("config", None)
    stop = rest.pop("stop", None)
    messages = model._convert_input(model_input).to_messages()
    prompt = dumps([m.model_copy(update={"id": None}) for m in messages])
    return model_call(run, prompt_digest(prompt, model._get_llm_string(stop=stop, **rest)))


def _checkpoint(merged: BaseMessageChunk, call: ModelCall) -> tuple[Stored, list[dict[str, Any]]]:
    message = message_chunk_to_message(merged)
    generations = [ChatGeneration(message=message)]
    return Stored(dump_generations(generations)), usage_rows([message], call)


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
