"""The input hash of a model call: what must be the same for its checkpoint to be reused.

It covers the model with its parameters (LangChain's ``llm_string``: class, model name,
temperature, bound tools, stop words …) and the conversation, normalized: message ids, usage
and response metadata differ between a fresh message and its replay (or between two runs),
so they are left out. Each message's digest is computed once and kept with the message
object (LangChain passes the same objects turn after turn), so hashing a call costs the same
at turn 200 as at turn 2.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from tidebase_core.plugin import input_hash

__all__ = ["message_digest", "prompt_digest"]

_VOLATILE = frozenset({"id", "usage_metadata", "response_metadata"})

# id(message) → (a weak reference to it, its digest, its content when hashed): a message
# whose content was replaced is hashed again. By identity: messages compare by value and are
# unhashable.
_digests: dict[int, tuple[weakref.ref[BaseMessage], str, object]] = {}


def message_digest(message: BaseMessage) -> str:
    known = _digests.get(id(message))
    if known is not None and known[0]() is message and known[2] is message.content:
        return known[1]
    fields = {k: v for k, v in message.model_dump().items() if k not in _VOLATILE}
    digest = input_hash(fields, what="model message")
    _digests[id(message)] = (weakref.ref(message, _forget(id(message))), digest, message.content)
    return digest


def _forget(key: int) -> Any:
    def forget(_: object) -> None:
        _digests.pop(key, None)

    return forget


def prompt_digest(messages: Sequence[BaseMessage], model: str, extra: Any = None) -> str:
    """The hash of one model call: ``model`` (an ``llm_string``), the conversation, and
    ``extra`` (what an agent's request adds: tools, response format …)."""
    # The conversation as one digest of its messages' digests (canonical JSON of 200 of them
    # would cost more than the rest of the call's overhead).
    conversation = hashlib.sha256("".join([message_digest(m) for m in messages]).encode())
    return input_hash(
        {"model": model, "messages": conversation.hexdigest(), "extra": extra}, what="model call"
    )
