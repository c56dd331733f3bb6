"""The ambient run: which run the code on this thread or task is part of.

``tide.run`` and ``@workflow`` set it before user code runs, so decorated steps, plugins and
``tidebase.current_run()`` find their run without it being passed around.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from ._async.context import AsyncRunContext
    from ._sync.context import RunContext

    AnyRunContext: TypeAlias = RunContext | AsyncRunContext

__all__ = ["current_run", "run_id"]

_current: ContextVar[AnyRunContext | None] = ContextVar("tidebase_current_run", default=None)
_next_run_id: ContextVar[str | None] = ContextVar("tidebase_next_run_id", default=None)
# The key of the step whose body is running here (None in the workflow body itself).
current_step: ContextVar[str | None] = ContextVar("tidebase_current_step", default=None)


def current_run() -> AnyRunContext | None:
    """The run context of the workflow being executed here, or None outside any run."""
    return _current.get()


@contextmanager
def run_id(value: str) -> Iterator[str]:
    """Start (or resume) the next decorated workflow called in this block under ``value``.

    ``with tidebase.run_id("run_123"): research("tides")``
    """
    from ._run_base import check_run_id

    token = _next_run_id.set(check_run_id(value))
    try:
        yield value
    finally:
        _next_run_id.reset(token)


def take_next_run_id() -> str | None:
    """The run id chosen with ``run_id(...)``; consumed by the outermost workflow call."""
    value = _next_run_id.get()
    if value is not None:
        _next_run_id.set(None)
    return value
