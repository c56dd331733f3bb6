"""The event log: append from anywhere, emit from inside a run, subscribe live.

This is the async source; ``tidebase_core/_sync/events.py`` is generated from it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .._run_base import check_event_type, check_name, check_run_id
from ..errors import RunNotFound
from ..models import Event
from ..serialization import encode

if TYPE_CHECKING:
    from .client import AsyncTidebase
    from .context import AsyncRunContext

__all__ = ["AsyncEvents", "AsyncRunEvents", "subscribe"]

_BATCH = 500
_ENDS = frozenset({"run.completed", "run.cancelled"})


class AsyncRunEvents:
    """``run.events``: the run's own log, written by its worker."""

    def __init__(self, run: AsyncRunContext) -> None:
        self._run = run

    async def emit(
        self, type: str, payload: Any = None, *, once: bool = True, key: str | None = None
    ) -> int | None:
        """Append an event; returns its seq (None when replay skipped an earlier attempt's).

        Emitted from the workflow body, an event is written once: a resumed run replaying that
        code skips it (the n-th ``type`` event here is recognised as such; ``key``, an identity
        of your own such as a tool call id, recognises it whatever order concurrent code emits
        in). ``once=False`` appends on every attempt; for events that describe this execution,
        which replay does not reproduce one for one.
        """
        check_event_type(type)
        data = encode(payload, what=f"payload of event {type!r}")
        ex = self._run._execution
        name = f"event:{type}" if key is None else f"event:{type}:{check_name(key, 'event key')}"
        perform, op_key = ex.next_op(name) if once else (True, None)
        if not perform:
            return None
        seq = await self._run._db.append_event(
            run_id=ex.run_id, type=type, payload=data, token=ex.token, op_key=op_key
        )
        if seq is None:
            await self._run._refused()
        return seq


class AsyncEvents:
    """``tide.events``: append to any run's log from any process."""

    def __init__(self, client: AsyncTidebase) -> None:
        self._client = client

    async def append(self, run_id: str, type: str, payload: Any = None) -> int:
        """Append an event to run ``run_id``'s log; returns its seq (gap-free per run)."""
        check_run_id(run_id)
        check_event_type(type)
        data = encode(payload, what=f"payload of event {type!r}")
        async with self._client._store.connection() as db:
            seq = await db.append_event(run_id=run_id, type=type, payload=data)
        if seq is None:
            raise RunNotFound(run_id)
        return seq


async def subscribe(
    client: AsyncTidebase, run_id: str, *, after_seq: int = 0, until_end: bool = True
) -> AsyncIterator[Event]:
    """Every event of the run after ``after_seq``, then each new one as it is written.

    Catches up by seq, then waits on LISTEN/NOTIFY: a subscriber that reconnects sees no gap and
    no duplicate. With ``until_end`` it stops after the run completes, is cancelled, or fails
    (and has not been resumed since).
    """
    check_run_id(run_id)
    async with client._store.listener(run_id) as listener:
        if listener.run_status is None:
            raise RunNotFound(run_id)
        last = after_seq
        while True:
            batch = await listener.db.list_events(run_id, after_seq=last, limit=_BATCH)
            for event in batch:
                yield event
                last = event.seq
                if until_end and event.type in _ENDS:
                    return
            if len(batch) == _BATCH:
                continue
            if until_end and batch and batch[-1].type == "run.failed":
                return
            await listener.wait(30.0)
