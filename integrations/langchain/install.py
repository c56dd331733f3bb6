"""``install()``: make every LangChain model call and callback in this process run-aware."""

from __future__ import annotations

from contextvars import ContextVar

from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.tracers.context import register_configure_hook

from .cache import TidebaseLLMCache
from .callbacks import TidebaseCallbackHandler
from .streaming import wrap_streaming

__all__ = ["install"]

_handler: TidebaseCallbackHandler | None = None


def install(*, events: bool = False) -> None:
    """Replay the active run's chat-model calls and record their usage, process-wide.

    - sets a global LLM cache that, inside a run, replays a model call that completed in an
      earlier attempt and checkpoints a new one with its usage (one write). The LLM cache that
      was set before keeps serving everything outside runs;
    - makes ``stream()``/``astream()`` on a model replay or checkpoint the same way;
    - attaches a ``TidebaseCallbackHandler`` to every LangChain call (unless the call has one
      of its own), with run events if ``events=True`` (one write per callback).

    Outside a run all of it does nothing. Call it once at startup; calling it again is safe
    (the last ``events`` wins, and a cache set since then becomes the fallback).
    """
    global _handler
    if _handler is None:
        _handler = TidebaseCallbackHandler(events=events)
        # A ContextVar whose default is the handler: LangChain's configure hook adds it to
        # every callback manager, in every thread and task, without per-call plumbing.
        hook: ContextVar[TidebaseCallbackHandler | None] = ContextVar(
            "tidebase_langchain_handler", default=_handler
        )
        register_configure_hook(hook, True, TidebaseCallbackHandler)
        wrap_streaming()
    _handler.events = events
    cache = get_llm_cache()
    if not isinstance(cache, TidebaseLLMCache):
        set_llm_cache(TidebaseLLMCache(fallback=cache))
