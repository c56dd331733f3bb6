"""Queues, schedules and recovery over HTTP, on the core's queue machinery (issue 13).

A job is a run with status ``queued``: ``enqueue`` is ``tide.enqueue`` (dedupe exact under
concurrency), ``claim`` is the core's claim statement (``FOR UPDATE SKIP LOCKED`` under the
queue's lock, caps counted after it) with the run's lease given to a protocol worker, schedules
are ``tide.schedules`` (fired by the reconciler that ``tidebase serve`` ticks), and ``recover``
is ``tide.runs.recover``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from tidebase_core._run_base import check_name
from tidebase_core.errors import RunLocked, RunNotFound
from tidebase_core.queue_models import Schedule

from .channels import ChannelSpec, add_channels, checked
from .deps import server
from .errors import ProtocolError, check_url, invalid_field, not_found, parse_body
from .routing import RawRoute as Route
from .store import QueueRow, RunRow
from .wire import iso, run_json, webhook_json

__all__ = ["routes"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Enqueue(_Body):
    workflowName: str = Field(min_length=1)
    input: Any = None
    metadata: dict[str, Any] | None = None
    recoveryWebhook: str | None = None
    channels: list[ChannelSpec] | None = None
    dedupeKey: str | None = Field(default=None, min_length=1)
    delayMs: int | None = Field(default=None, ge=0)
    runAt: str | None = None
    maxAttempts: int | None = Field(default=None, gt=0)
    priority: int | None = None
    deadlineMs: int | None = Field(default=None, gt=0)


class Claim(_Body):
    queues: list[str] = Field(min_length=1)
    leaseOwner: str | None = None
    limit: int | None = Field(default=None, gt=0, le=100)


class QueueConfig(_Body):
    concurrency: int | None = Field(default=None, gt=0)
    ratePerMinute: int | None = Field(default=None, gt=0)
    invokeUrl: str | None = None


class PutSchedule(_Body):
    cron: str = Field(min_length=1)
    workflowName: str = Field(min_length=1)
    input: Any = None
    queue: str | None = Field(default=None, min_length=1)
    maxAttempts: int | None = Field(default=None, gt=0)
    enabled: bool | None = None


class Recover(_Body):
    reason: str | None = Field(default=None, min_length=1)


def _bad(exc: Exception) -> ProtocolError:
    """The core refused an argument (a ValueError/TypeError naming the fix): 400."""
    return ProtocolError(400, str(exc), code="invalid_request")


async def _run_row(request: Request, run_id: str) -> RunRow:
    run = await server(request).store.get_run(run_id)
    if run is None:
        raise not_found("run")
    return run


async def enqueue(request: Request) -> JSONResponse:
    """Enqueue ``workflowName`` on the queue: ``{run, deduplicated}``. While a run with the same
    ``dedupeKey`` is active on this queue, that run is answered instead of a new one."""
    srv = server(request)
    queue = request.path_params["queue"]
    body = await parse_body(request, Enqueue)
    specs = checked(body.channels)
    webhook = check_url(body.recoveryWebhook, "recoveryWebhook")
    if body.runAt is not None and body.delayMs is not None:
        raise invalid_field("runAt", "give runAt or delayMs, not both")
    run_at: datetime | None = None
    if body.runAt is not None:
        try:
            run_at = datetime.fromisoformat(body.runAt.replace("Z", "+00:00"))
        except ValueError:
            raise invalid_field(
                "runAt",
                f"expected an ISO 8601 time such as 2026-01-01T03:00:00Z, got {body.runAt!r}",
            ) from None
        if run_at.tzinfo is None:
            raise invalid_field("runAt", "give the offset, e.g. 2026-01-01T03:00:00Z (UTC)")
    run_id = f"run_{uuid.uuid4().hex}"
    if specs:  # before the run exists (a worker may claim it at once); dropped if not used
        async with srv.store.transaction() as tx:
            await add_channels(tx, run_id, specs)
    try:
        enqueued = await srv.tide.enqueue(
            body.workflowName,
            run_id=run_id,
            queue=queue,
            input={} if body.input is None else body.input,
            metadata={} if body.metadata is None else body.metadata,
            dedupe_key=body.dedupeKey,
            delay_s=None if body.delayMs is None else body.delayMs / 1000,
            run_at=run_at,
            max_attempts=body.maxAttempts,
            priority=body.priority,
            deadline_s=None if body.deadlineMs is None else body.deadlineMs / 1000,
            recovery_webhook=webhook,
        )
    except (ValueError, TypeError) as exc:
        if specs:
            await srv.store.delete_channels(run_id)
        raise _bad(exc) from None
    if specs and enqueued.run.run_id != run_id:  # deduplicated: the active run keeps its own
        await srv.store.delete_channels(run_id)
    run = await _run_row(request, enqueued.run.run_id)
    return JSONResponse({"run": run_json(run), "deduplicated": enqueued.deduplicated})


async def claim(request: Request) -> JSONResponse:
    """Claim up to ``limit`` (default 1) ready runs from ``queues`` in order, within each
    queue's caps: ``{runs, leaseOwner}``. Each claimed run is ``running``, leased to
    ``leaseOwner`` (heartbeat, complete, fail as after runs/begin)."""
    srv = server(request)
    body = await parse_body(request, Claim)
    for i, name in enumerate(body.queues):
        try:
            check_name(name, "queue name")
        except (ValueError, TypeError) as exc:
            raise invalid_field(f"queues.{i}", str(exc)) from None
    owner = body.leaseOwner or str(uuid.uuid4())
    limit = body.limit or 1
    claimed: list[str] = []
    async with srv.store.transaction() as tx:
        for queue in body.queues:
            while len(claimed) < limit:
                run_id = await tx.claim(queue, owner)
                if run_id is None:
                    break
                claimed.append(run_id)
    runs = [await _run_row(request, run_id) for run_id in claimed]
    return JSONResponse({"runs": [run_json(r) for r in runs], "leaseOwner": owner})


def _config_json(row: QueueRow | None) -> dict[str, Any] | None:
    if row is None or not row.configured:
        return None
    return {
        "name": row.name,
        "concurrency": row.concurrency,
        "ratePerMinute": row.rate_per_minute,
        "invokeUrl": row.invoke_url,
    }


async def list_queues(request: Request) -> JSONResponse:
    """Every queue with runs or a config: counts per lifecycle state, and its config."""
    rows = await server(request).store.queue_stats()
    return JSONResponse(
        {
            "queues": [
                {
                    "name": r.name,
                    "queued": r.queued,
                    "running": r.running,
                    "failed": r.failed,
                    "completed": r.completed,
                    "cancelled": r.cancelled,
                    "config": _config_json(r),
                }
                for r in rows
            ]
        }
    )


async def configure_queue(request: Request) -> JSONResponse:
    """Set the queue's caps (``concurrency``, ``ratePerMinute``) and push URL (``invokeUrl``);
    a field left out or ``null`` keeps its value (upstream's coalesce). Caps hold across every
    worker."""
    srv = server(request)
    queue = request.path_params["queue"]
    try:
        check_name(queue, "queue name")
    except (ValueError, TypeError) as exc:
        raise _bad(exc) from None
    body = await parse_body(request, QueueConfig)
    given = {
        {"concurrency": "concurrency", "ratePerMinute": "rate", "invokeUrl": "invoke_url"}[f]
        for f in body.model_fields_set
        if getattr(body, f) is not None
    }
    row = await srv.store.configure_queue(
        queue,
        given=given,
        concurrency=body.concurrency,
        rate=body.ratePerMinute,
        invoke_url=check_url(body.invokeUrl, "invokeUrl"),
    )
    return JSONResponse({"config": _config_json(row)})


def _schedule_json(
    schedule: Schedule, times: dict[str, tuple[datetime, datetime]]
) -> dict[str, Any]:
    created, updated = times.get(schedule.name, (None, None))
    return {
        "name": schedule.name,
        "cron": schedule.cron,
        "workflowName": schedule.workflow_name,
        "input": schedule.input if schedule.input is not None else {},
        "queue": schedule.queue,
        "maxAttempts": schedule.max_attempts if schedule.max_attempts is not None else 1,
        "enabled": schedule.enabled,
        "nextRunAt": iso(schedule.next_fire_at),
        "lastEnqueuedAt": iso(schedule.last_fired_at),
        "createdAt": iso(created),
        "updatedAt": iso(updated),
    }


async def put_schedule(request: Request) -> JSONResponse:
    """Create or replace a cron schedule (5 fields, UTC): each fire enqueues ``workflowName``
    on ``queue`` (default ``default``) once, however many servers and workers tick. A bad
    cron is 500 ``invalid_cron`` before anything is stored."""
    srv = server(request)
    name = request.path_params["name"]
    body = await parse_body(request, PutSchedule)
    try:
        schedule = await srv.tide.schedules.set(
            name,
            cron=body.cron,
            workflow_name=body.workflowName,
            input={} if body.input is None else body.input,
            queue=body.queue or "default",
            max_attempts=body.maxAttempts,
            enabled=True if body.enabled is None else body.enabled,
        )
    except (ValueError, TypeError) as exc:
        if "cron" in str(exc):
            # 500, as upstream (its tests assert it: its parser's error is unhandled there).
            raise ProtocolError(500, str(exc), code="invalid_cron", field="cron") from None
        raise _bad(exc) from None
    times = await srv.store.schedule_times()
    return JSONResponse({"schedule": _schedule_json(schedule, times)})


async def list_schedules(request: Request) -> JSONResponse:
    """Every schedule, by name."""
    srv = server(request)
    schedules = await srv.tide.schedules.list()
    times = await srv.store.schedule_times()
    return JSONResponse({"schedules": [_schedule_json(s, times) for s in schedules]})


async def delete_schedule(request: Request) -> JSONResponse:
    """Delete a schedule (the runs it enqueued stay): ``{deleted: name}``."""
    srv = server(request)
    name = request.path_params["name"]
    try:
        deleted = await srv.tide.schedules.delete(name)
    except (ValueError, TypeError) as exc:
        raise _bad(exc) from None
    if not deleted:
        raise not_found("schedule")
    return JSONResponse({"deleted": name})


async def recover_run(request: Request) -> JSONResponse:
    """Put a failed or stalled run back where something re-invokes it: a queued run on its
    queue, a plain run ``pending`` with its ``recoveryWebhook`` POSTed, signed:
    ``{run, recoveryAttempt}``. 409 while a live worker holds the run, or once it finished;
    422 for a plain run without a webhook (as upstream: nothing would re-invoke it)."""
    srv = server(request)
    run_id = request.path_params["runId"]
    body = await parse_body(request, Recover)
    reason = body.reason or "manual"
    before = await _run_row(request, run_id)
    if before.status in ("completed", "cancelled"):
        code = "run_completed" if before.status == "completed" else "run_cancelled"
        raise ProtocolError(409, f"run already {before.status}", code=code, run=run_json(before))
    if before.queue is None and not before.recovery_webhook:
        raise ProtocolError(
            422, "run has no recoveryWebhook configured", code="no_recovery_webhook"
        )
    sent_before = len(await srv.tide.runs.webhooks(run_id))
    try:
        await srv.tide.runs.recover(run_id, reason=reason)
    except RunNotFound:
        raise not_found("run") from None
    except RunLocked:
        run = await _run_row(request, run_id)
        raise ProtocolError(
            409, "run is leased", code="run_leased", leaseOwner=run.owner_token
        ) from None
    except (ValueError, TypeError) as exc:
        raise _bad(exc) from None
    attempts = await srv.tide.runs.webhooks(run_id)
    attempt = (
        webhook_json(attempts[-1], len(attempts), reason=reason)
        if len(attempts) > sent_before
        else None
    )
    run = await _run_row(request, run_id)
    return JSONResponse({"run": run_json(run), "recoveryAttempt": attempt})


routes = [
    Route("/queues", list_queues, methods=["GET"]),
    Route("/queues/claim", claim, methods=["POST"]),
    Route("/queues/{queue}/enqueue", enqueue, methods=["POST"]),
    Route("/queues/{queue}/config", configure_queue, methods=["PUT"]),
    Route("/schedules", list_schedules, methods=["GET"]),
    Route("/schedules/{name}", put_schedule, methods=["PUT"]),
    Route("/schedules/{name}", delete_schedule, methods=["DELETE"]),
    Route("/runs/{runId}/recover", recover_run, methods=["POST"]),
]
