"""Cron schedules: ``tide.schedules.set/list/delete``. The reconciler fires them.

This is the async source; ``tidebase_core/_sync/schedules.py`` is generated from it.
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._run_base import check_name
from ..queue_models import Schedule, check_cron, next_fire_time
from ..serialization import decode_json, encode
from .queue_store import AsyncQueueStore

if TYPE_CHECKING:
    from .client import AsyncTidebase

__all__ = ["AsyncSchedules"]


def _schedule(row: Any) -> Schedule:
    name, cron, workflow, queue, enabled, next_fire_at, input, max_attempts, last = row[:9]
    return Schedule(
        name=name,
        cron=cron,
        workflow_name=workflow,
        queue=queue,
        enabled=enabled,
        next_fire_at=next_fire_at,
        input=None if input is None else decode_json(input),
        max_attempts=max_attempts,
        last_fired_at=last,
    )


class AsyncSchedules:
    """``tide.schedules``: 5-field cron expressions in UTC that enqueue a workflow."""

    def __init__(self, client: AsyncTidebase) -> None:
        self._client = client

    async def set(
        self,
        name: str,
        *,
        cron: str,
        workflow_name: str,
        input: Any = None,
        queue: str = "default",
        max_attempts: int | None = None,
        enabled: bool = True,
        now: datetime | None = None,
    ) -> Schedule:
        """Create or replace the schedule ``name``. Each fire enqueues ``workflow_name`` on
        ``queue`` with the dedupe key ``sched:<name>:<fire time>``: a fire happens once however
        many reconcilers tick. Re-setting an unchanged cron keeps its next fire time."""
        check_name(name, "schedule name")
        check_name(workflow_name, "workflow name")
        check_name(queue, "queue name")
        cron = check_cron(cron)
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise ValueError(f"max_attempts must be an int >= 1 or None, got {max_attempts!r}")
        if not isinstance(enabled, bool):
            raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
        start = now or datetime.now(UTC)
        async with self._client._store.connection() as db:
            row = await AsyncQueueStore(db).upsert_schedule(
                {
                    "name": name,
                    "cron": cron,
                    "workflow": workflow_name,
                    "input": None if input is None else encode(input, what="schedule input"),
                    "queue": queue,
                    "max_attempts": max_attempts,
                    "enabled": enabled,
                    "next_fire_at": next_fire_time(cron, start),
                }
            )
        return _schedule(row)

    async def list(self) -> builtins.list[Schedule]:
        async with self._client._store.connection() as db:
            return [_schedule(r) for r in await AsyncQueueStore(db).list_schedules()]

    async def delete(self, name: str) -> bool:
        """Delete the schedule; False if there was none. Runs it enqueued stay."""
        check_name(name, "schedule name")
        async with self._client._store.connection() as db:
            return await AsyncQueueStore(db).delete_schedule(name)
