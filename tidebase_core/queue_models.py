"""What the queue, schedule and webhook APIs return (pydantic models, like ``models.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict

from .models import RunInfo

__all__ = [
    "Enqueued",
    "QueueInfo",
    "Schedule",
    "WebhookAttempt",
    "check_cron",
    "next_fire_time",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class Enqueued(_Model):
    """What ``tide.enqueue`` returns: the queued run, and whether an active run with the same
    dedupe key was returned instead of a new one."""

    run: RunInfo
    deduplicated: bool


class QueueInfo(_Model):
    name: str
    depth: int
    """Runs waiting in the queue (status ``queued``, ready or delayed)."""
    running: int
    concurrency: int | None = None
    rate_per_minute: int | None = None
    invoke_url: str | None = None


class Schedule(_Model):
    name: str
    cron: str
    workflow_name: str
    queue: str
    enabled: bool
    next_fire_at: datetime | None = None
    input: Any = None
    max_attempts: int | None = None
    last_fired_at: datetime | None = None


class WebhookAttempt(_Model):
    """One delivery attempt of a recovery (``run.resume``) or push (``run.invoke``) webhook."""

    run_id: str
    kind: str
    url: str
    status_code: int | None = None
    error: str | None = None
    created_at: datetime


def check_cron(cron: object) -> str:
    """A 5-field cron expression (minute hour day-of-month month day-of-week, UTC)."""
    if not isinstance(cron, str):
        raise TypeError(f"cron must be a str such as '0 3 * * *', got {type(cron).__name__}")
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {cron!r} has {len(fields)} fields; Tidebase takes 5 (minute hour "
            "day-of-month month day-of-week, in UTC), e.g. '0 3 * * *' for 03:00 every day"
        )
    names = ("minute", "hour", "day-of-month", "month", "day-of-week")
    for name, value in zip(names, fields, strict=True):
        # cronsim calls a zero step only a bad value: say which mistake it is.
        steps = [part.partition("/")[2] for part in value.split(",")]
        if any(step.isdigit() and int(step) == 0 for step in steps):
            raise ValueError(
                f"cron {cron!r} has a step of 0 in its {name} field; a step is at least 1, "
                "e.g. '*/15 * * * *' for every 15 minutes"
            )
    try:
        CronSim(cron, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(
            f"cron {cron!r} is not a valid cron expression ({exc}); use 5 fields, e.g. "
            "'*/15 * * * *' for every 15 minutes"
        ) from None
    return " ".join(fields)


def next_fire_time(cron: str, after: datetime) -> datetime:
    """The first fire time of ``cron`` strictly after ``after`` (UTC)."""
    if after.tzinfo is None:
        after = after.replace(tzinfo=UTC)
    after = after.astimezone(UTC)
    return next(iter(CronSim(cron, after)))
