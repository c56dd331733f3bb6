"""The two writes LangChain's synchronous callbacks make on the active run.

Callbacks are plain functions, also when LangChain runs them inside an async run's event loop,
so an async run is written through a blocking view of it (its own pooled connection), the
way ``save_checkpoint_sync`` writes from sync code inside an async run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tidebase_core.plugin import AnyRunContext, emit_event_sync, record_usage_sync

__all__ = ["emit_event", "record_usage"]


def emit_event(run: AnyRunContext, type: str, payload: Mapping[str, Any]) -> None:
    """Append an event that describes this attempt's work.

    Emitted as part of a step's execution rather than as a workflow-body operation: callbacks
    fire differently on replay (a replayed tool fires none, a failed call may be retried), so
    they must not count towards the operations a resumed run skips.
    """
    emit_event_sync(run, type, dict(payload))


def record_usage(run: AnyRunContext, row: Mapping[str, Any]) -> None:
    """A ledger row for a model call no checkpoint carries (a model with ``cache=False``)."""
    record_usage_sync(run, **row)
