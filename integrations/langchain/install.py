"""``install()``: make every LangChain model call and callback in this process run-aware."""

from __future__ import annotations

from contextvars import ContextVar

from langchain_core.tracers.context import register_configure_hook

from .callbacks import TidebaseCallbackHandler
from .models import wrap_models

__all__ = ["install"]

_handler: TidebaseCallbackHandler | None = None


def install(*, events: bool = False) -> None:
    """Replay the active run's chat-model calls and record their usage, process-wide.

    - makes every chat-model call (``invoke``, ``batch``, ``generate``, ``stream`` … and the
      calls chains and LangGraph nodes make) a durable call of the active run: replayed when
      an earlier attempt completed it, else executed and checkpointed with its usage;
    - attaches a ``TidebaseCallbackHandler`` to every LangChain call (unless the call has one
      of its own), with run events if ``events=True`` (one write per callback).

    Outside a run all of it does nothing. Call it once at startup; calling it again is safe
    (the last ``events`` wins).
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
        wrap_models()
    _handler.events = events
