"""``install()``: make every LangChain chat-model call in this process run-aware."""

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
      an earlier attempt completed it, else executed and checkpointed with its usage (a model
      built with ``cache=False``: executed on every attempt, its usage written);
    - with ``events=True``, attaches a ``TidebaseCallbackHandler`` to every LangChain call
      (unless the call has one of its own) that appends run events (one write per callback).

    With events off no handler is attached: a callback manager with a handler costs every
    LangChain call in the process its dispatch, in a run or not. Outside a run all of it does
    nothing. Call it once at startup; calling it again is safe (the last ``events`` wins: once
    attached, the handler stays, silent when events are turned off again).
    """
    global _handler
    wrap_models()
    if events and _handler is None:
        _handler = TidebaseCallbackHandler(events=True)
        # A ContextVar whose default is the handler: LangChain's configure hook adds it to
        # every callback manager, in every thread and task, without per-call plumbing.
        hook: ContextVar[TidebaseCallbackHandler | None] = ContextVar(
            "tidebase_langchain_handler", default=_handler
        )
        register_configure_hook(hook, True, TidebaseCallbackHandler)
    if _handler is not None:
        _handler.events = events
