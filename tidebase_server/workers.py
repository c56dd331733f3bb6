"""The worker side of a run: begin (take the lease), heartbeat (extend it), complete, fail.

A protocol worker is named by ``x-tidebase-worker`` (else the server names it and answers the
name as ``leaseOwner``). Its lease is the run's lease: an in-process worker cannot claim the run
while it is live, and the other way round. Cancellation is one-way: complete and fail never
resurrect a cancelled run.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse

from tidebase_core._async.queue_store import AsyncQueueStore
from tidebase_core._async.reconciler import AsyncReconciler
from tidebase_core.replay import ResumeDecision
from tidebase_core.retry import backoff_seconds
from tidebase_core.serialization import encode

from .channels import delivers
from .deps import Server, server
from .errors import ProtocolError, not_found, parse_body
from .routing import RawRoute as Route
from .store import RunRow
from .wire import run_json

__all__ = ["routes"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Heartbeat(_Body):
    leaseOwner: str | None = None


class CompleteRun(_Body):
    result: Any = None
    leaseOwner: str | None = None


class FailRun(_Body):
    error: Any = None
    failureClass: str | None = None
    leaseOwner: str | None = None


async def _run(request: Request, run_id: str) -> RunRow:
    run = await server(request).store.get_run(run_id)
    if run is None:
        raise not_found("run")
    return run


async def begin_run(request: Request) -> JSONResponse:
    """Take the run's lease (one more attempt): 409 while another worker's lease is live."""
    srv = server(request)
    run_id = request.path_params["runId"]
    owner = request.headers.get("x-tidebase-worker") or str(uuid.uuid4())
    async with srv.store.transaction() as tx:
        locked = await tx.lock_run(run_id)
        if locked is None:
            raise not_found("run")
        status = locked.status
        holder: str | None = None
        if status not in ("completed", "cancelled"):
            if locked.leased and locked.owner != owner:
                holder = locked.owner
            else:
                await tx.begin_run(run_id, owner, encode({"leaseOwner": owner}, what="event"))
    run = await _run(request, run_id)
    if status == "cancelled":
        raise ProtocolError(409, "run is cancelled", code="run_cancelled", run=run_json(run))
    if status != "completed" and holder is not None:
        raise ProtocolError(409, "run is leased", code="run_leased", leaseOwner=holder)
    return JSONResponse({"run": run_json(run), "leaseOwner": owner})


async def heartbeat(request: Request) -> JSONResponse:
    """Extend the lease (no attempt, no event); 409 ``lease_lost``/``run_cancelled`` if lost."""
    srv = server(request)
    run_id = request.path_params["runId"]
    body = await parse_body(request, Heartbeat)
    if not body.leaseOwner:
        raise ProtocolError(400, "leaseOwner is required", code="invalid_request")
    async with srv.store.transaction() as tx:
        if await tx.lock_run(run_id) is None:
            raise not_found("run")
        held = await tx.heartbeat(run_id, body.leaseOwner)
    run = await _run(request, run_id)
    if not held:
        code = "run_cancelled" if run.status == "cancelled" else "lease_lost"
        raise ProtocolError(409, "lease lost", code=code, run=run_json(run))
    return JSONResponse({"run": run_json(run)})


def _fenced(owner: str | None, locked_owner: str | None) -> bool:
    """A worker that names itself must still hold the lease (the SDKs do not name themselves
    on complete/fail; upstream does not fence those, and neither do we then)."""
    return owner is not None and owner != locked_owner


@delivers
async def complete_run(request: Request) -> JSONResponse:
    """Complete with ``result``; a cancelled or completed run is answered as it is."""
    srv = server(request)
    run_id = request.path_params["runId"]
    body = await parse_body(request, CompleteRun)
    result = encode(body.result, what="run result")
    async with srv.store.transaction() as tx:
        locked = await tx.lock_run(run_id)
        if locked is None:
            raise not_found("run")
        if locked.status not in ("cancelled", "completed"):
            if _fenced(body.leaseOwner, locked.owner):
                raise ProtocolError(409, "lease lost", code="lease_lost")
            await tx.complete_run(run_id, result, encode({"result": body.result}, what="event"))
    return JSONResponse({"run": run_json(await _run(request, run_id))})


@delivers
async def fail_run(request: Request) -> JSONResponse:
    """Fail with ``error``; a cancelled or completed run is answered as it is. A queued run
    with attempts left goes back to its queue after 5 s·2^(attempt−1) (``requeued: true``), as
    in the in-process worker; its last failure is ``failed`` with ``max_retries``. A plain run
    with a ``recoveryWebhook`` gets it POSTed (signed ``run.recover``, reason ``run_failed``,
    at most once per throttle window), as upstream, so its app can resume it."""
    srv = server(request)
    run_id = request.path_params["runId"]
    body = await parse_body(request, FailRun)
    error = {} if body.error is None else body.error
    failure_class = body.failureClass
    if failure_class not in {d.value for d in ResumeDecision}:
        failure_class = None  # only this project's resume decisions classify a failure
    requeued = False
    async with srv.store.transaction() as tx:
        locked = await tx.lock_run(run_id)
        if locked is None:
            raise not_found("run")
        if locked.status not in ("cancelled", "completed") and _fenced(
            body.leaseOwner, locked.owner
        ):
            raise ProtocolError(409, "lease lost", code="lease_lost")
        queued_attempt = (
            locked.queue is not None
            and locked.token is not None
            and locked.status in ("running", "waiting")
        )
        if queued_attempt and locked.token is not None:
            status = await tx.fail_queued(
                run_id,
                locked.token,
                encode(error, what="run error"),
                encode({"error": error}, what="event"),
                backoff_seconds(locked.attempt),
            )
            requeued = status == "queued"
        elif locked.status not in ("cancelled", "completed"):
            await tx.fail_run(
                run_id,
                encode(error, what="run error"),
                failure_class,
                encode({"error": error, "failureClass": failure_class}, what="event"),
            )
    run = await _run(request, run_id)
    if run.status == "failed" and run.queue is None and run.recovery_webhook:
        await _nudge(srv, run)
    return JSONResponse({"run": run_json(run), "requeued": requeued})


async def _nudge(srv: Server, run: RunRow) -> None:
    """The run's recovery webhook, through the core reconciler's sender (signed, recorded,
    throttled per run)."""
    assert run.recovery_webhook is not None
    async with srv.tide._store.connection() as db:
        await AsyncReconciler(srv.tide)._recovery_webhook(
            AsyncQueueStore(db),
            run.run_id,
            run.workflow_name,
            None if run.input is None else encode(run.input, what="run input"),
            run.recovery_webhook,
            "run_failed",
        )


routes = [
    Route("/runs/{runId}/begin", begin_run, methods=["POST"]),
    Route("/runs/{runId}/heartbeat", heartbeat, methods=["POST"]),
    Route("/runs/{runId}/complete", complete_run, methods=["POST"]),
    Route("/runs/{runId}/fail", fail_run, methods=["POST"]),
]
