"""The chat-model call in progress here: which model it is, and who checkpoints it.

LangChain tells the model's provider and name only to callbacks (``on_chat_model_start``), and
the cache that checkpoints the call sees neither. The callback handler announces the call
here; whoever writes its checkpoint reads it back for the usage row.

A writer that drives the call itself (the durable ``stream()``, ``TidebaseMiddleware``)
*claims* it for the call's duration: the LLM cache then stands aside and the handler leaves
the usage to the writer, so one call is one checkpoint and one ledger row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = ["ModelCall", "announce", "claim", "claimed", "current", "finish"]


@dataclass(slots=True)
class ModelCall:
    claimed: bool = False
    provider: str | None = None
    model: str | None = None


_current: ContextVar[ModelCall | None] = ContextVar("tidebase_langchain_call", default=None)


def current() -> ModelCall | None:
    return _current.get()


def claimed() -> bool:
    call = _current.get()
    return call is not None and call.claimed


@contextmanager
def claim(call: ModelCall) -> Iterator[ModelCall]:
    """Mark the model call made in this block as checkpointed by the caller."""
    call.claimed = True
    token = _current.set(call)
    try:
        yield call
    finally:
        _current.reset(token)


def announce(metadata: Mapping[str, Any] | None, invocation_params: Mapping[str, Any]) -> None:
    """``on_chat_model_start``: a call begins; note which model it is."""
    meta = metadata or {}
    provider = _text(meta.get("ls_provider"))
    model = _text(meta.get("ls_model_name")) or _text(invocation_params.get("model"))
    call = _current.get()
    if call is not None and call.claimed:
        call.provider, call.model = provider, model
    else:
        # Set in the caller's context, where LangChain goes on to consult the cache.
        _current.set(ModelCall(False, provider, model))


def finish() -> ModelCall | None:
    """``on_llm_end``/``on_llm_error``: the call is over; what it was."""
    call = _current.get()
    if call is not None and not call.claimed:
        _current.set(None)
    return call


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
