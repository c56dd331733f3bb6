"""The input hash of each durable operation: what must be the same for a checkpoint to be reused.

A model request's hash covers the model, its settings and the conversation sent to it,
normalized: the fields that differ on every execution of the same conversation (timestamps, run
and conversation ids, tool-call ids, usage, provider response ids) are dropped, or every resume
would miss. The digest is chained per agent run, so the cost of a request's hash does not grow
with the conversation. Messages are hashed as pydantic-core's JSON of them (fields in
declaration order: a fifth of the cost of canonical JSON), written by type inference rather than
through ``ModelMessagesTypeAdapter``: the same JSON for every message type, 40 % faster, and no
schema to build (the adapter's first use took 0.1 s of every fresh process). Tool calls
hash the tool name and arguments. Other operations (discovery, events, capability operations)
are identified by their place alone.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from typing import Any

import pydantic_core

from pydantic_ai.durable_exec import (
    DurableOperationId,
    ModelRequestId,
    ToolsetCallToolId,
    ToolsetValidateToolArgumentsId,
)
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from tidebase_core.plugin import input_hash

__all__ = ["normalized_json", "operation_digest", "request_digest"]

# Message- and part-level fields that change between two executions of the same conversation.
# Only these levels are normalized: a tool argument or a prompt is never touched.
_VOLATILE = frozenset(
    {
        "timestamp",
        "run_id",
        "conversation_id",
        "tool_call_id",
        "usage",
        "provider_response_id",
    }
)

# Per agent run (its key scope): how many messages its last request sent, and their digest.
_chains: weakref.WeakKeyDictionary[Any, tuple[int, str]] = weakref.WeakKeyDictionary()
# id(message) of a history passed in (``message_history=``) → (a weak reference to it, its
# digest, its parts' marks): the same history given to the next agent run is not hashed again.
# By identity: messages are dataclasses that compare by value, so they are unhashable.
_known: dict[int, tuple[weakref.ref[Any], str, tuple[int, ...]]] = {}


_VOLATILE_FIELDS: dict[str, Any] = dict.fromkeys(_VOLATILE, True)
_EXCLUDE: dict[str, Any] = {"__all__": {**_VOLATILE_FIELDS, "parts": {"__all__": _VOLATILE_FIELDS}}}


def normalized_json(messages: Sequence[ModelMessage]) -> bytes:
    """The conversation as JSON, without the fields that change on every execution."""
    try:
        return pydantic_core.to_json(list(messages), exclude=_EXCLUDE, bytes_mode="base64")
    except pydantic_core.PydanticSerializationError:
        # Content pydantic cannot write: the input hash's walk names what and where.
        dumped = ModelMessagesTypeAdapter.dump_python(list(messages), exclude=_EXCLUDE)
        return input_hash(dumped, what="model request messages").encode()


def _sha256(*chunks: bytes) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def _digest_of(message: ModelMessage) -> str:
    marks = _marks(message)
    known = _known.get(id(message))
    if known is not None and known[0]() is message and known[2] == marks:
        return known[1]
    digest = _sha256(normalized_json([message]))
    try:
        ref = weakref.ref(message, _forget(id(message)))
    except TypeError:  # not weak-referenceable: hashed every time
        return digest
    _known[id(message)] = (ref, digest, marks)
    return digest


def _marks(message: ModelMessage) -> tuple[int, ...]:
    """Its parts and their contents, by identity: a part added, replaced or given new content
    (``part.content = ...``) makes the message hashed again."""
    marks: list[int] = []
    for part in message.parts:
        marks += (id(part), id(getattr(part, "content", None)), id(getattr(part, "args", None)))
    return tuple(marks)


def _forget(key: int) -> Any:
    def forget(ref: weakref.ref[Any]) -> None:
        known = _known.get(key)
        if known is not None and known[0] is ref:  # not a newer message at the same address
            _known.pop(key, None)

    return forget


def request_digest(
    model_id: object,
    messages: Sequence[ModelMessage],
    settings: object,
    chain: object | None = None,
) -> str:
    """The hash of one model request: model, settings and the normalized conversation.

    The conversation's digest is chained per agent run (``chain``, its key scope): a request
    hashes the messages added since the run's previous request, with that request's digest.
    The first request of a run hashes the whole history it was given (a changed history is
    caught there); later messages are the run's own replayed responses and tool results. A
    conversation that got shorter (compacted) is hashed whole again.
    """
    previous = _chains.get(chain) if chain is not None else None
    count = len(messages)
    if previous is not None and previous[0] < count:
        conversation = _sha256(previous[1].encode(), normalized_json(messages[previous[0] :]))
    else:
        conversation = _sha256(*(_digest_of(m).encode() for m in messages))
    if chain is not None:
        _chains[chain] = (count, conversation)
    return input_hash(
        {
            "model": model_id if isinstance(model_id, str) else None,
            "settings": settings if isinstance(settings, dict) else None,
            "conversation": conversation,
        },
        what="model request",
    )


def operation_digest(
    operation_id: DurableOperationId, cache_key: tuple[object, ...], chain: object | None = None
) -> str:
    """The input hash of one operation, from the cache key the framework projects for it."""
    match operation_id:
        case ModelRequestId():
            # (model_id, messages, model_settings, model_request_parameters, run_context)
            messages: Sequence[ModelMessage] = cache_key[1]  # type: ignore[assignment]
            return request_digest(cache_key[0], messages, cache_key[2], chain)
        case ToolsetCallToolId() | ToolsetValidateToolArgumentsId():
            # (name, tool_args, ctx, tool or tool_def)
            return input_hash({"tool": cache_key[0], "args": cache_key[1]}, what="tool arguments")
        case _:
            return input_hash(None)
