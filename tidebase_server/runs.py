"""Runs: create (pending), list newest first, detail, cancel."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse

from tidebase_core.errors import RunNotFound
from tidebase_core.serialization import encode, encode_with_hash

from . import channels
from .auth import is_authenticated
from .channels import ChannelSpec, delivers
from .deps import server
from .errors import ProtocolError, check_url, not_found, parse_body
from .gates import expire_gates
from .routing import RawRoute as Route
from .wire import (
    edge_json,
    event_json,
    gate_json,
    run_json,
    state_version_json,
    step_json,
    usage_json,
    webhook_json,
)

__all__ = ["routes"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateRun(_Body):
    input: Any = None
    metadata: dict[str, Any] | None = None
    recoveryWebhook: str | None = None
    channels: list[ChannelSpec] | None = None


class CancelRun(_Body):
    reason: str | None = None
    actor: str | None = None


async def create_run(request: Request) -> JSONResponse:
    """Create a pending run of ``workflowName`` (a worker claims it with runs/begin or
    in-process ``tide.run``)."""
    srv = server(request)
    workflow = request.path_params["workflowName"]
    body = await parse_body(request, CreateRun)
    webhook = check_url(body.recoveryWebhook, "recoveryWebhook")
    specs = channels.checked(body.channels)
    run_input = {} if body.input is None else body.input
    input_text, input_hash = encode_with_hash(run_input, what="run input")
    metadata = {} if body.metadata is None else body.metadata
    run_id = f"run_{uuid.uuid4().hex}"
    payload = encode(
        {
            "workflowName": workflow,
            "input": run_input,
            "channels": [{"type": c.type, "url": c.url, "events": c.events or []} for c in specs],
        },
        what="event",
    )
    async with srv.store.transaction() as tx:
        created = await tx.create_run(
            run_id=run_id,
            workflow=workflow,
            input=input_text,
            input_hash=input_hash,
            metadata=encode(metadata, what="run metadata"),
            payload=payload,
            recovery_webhook=webhook,
        )
        if created:
            await channels.add_channels(tx, run_id, specs)
    if not created:  # a 128-bit collision: never in practice, but say so rather than lie
        raise ProtocolError(409, "run id already exists", code="run_exists")
    run = await srv.store.get_run(run_id)
    if run is None:
        raise not_found("run")
    return JSONResponse({"run": run_json(run)})


async def list_runs(request: Request) -> JSONResponse:
    """The 100 newest runs (``?limit=`` 1..1000)."""
    raw = request.query_params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ProtocolError(400, "limit must be an integer from 1 to 1000", code="invalid_request")
    runs = await server(request).store.list_runs(limit=int(raw))
    return JSONResponse({"runs": [run_json(r) for r in runs]})


async def get_run(request: Request) -> JSONResponse:
    """A run with its steps, state, versions, children, gates, usage and events."""
    srv = server(request)
    tide = srv.tide
    run_id = request.path_params["runId"]
    await expire_gates(srv, run_id)
    run = await srv.store.get_run(run_id)
    if run is None:
        raise not_found("run")
    try:
        steps = await tide.runs.steps(run_id)
        state = await tide.runs.state(run_id)
        versions = await tide.runs.state_versions(run_id)
        children = await tide.runs.children(run_id)
        gates = await tide.gates.list(run_id=run_id, limit=10_000)
        usage = await tide.usage.records(run_id)
        events = await tide.runs.events(run_id)
        webhooks = await tide.runs.webhooks(run_id)
        run_channels = await srv.store.list_channels(run_id)
        deliveries = await srv.store.list_deliveries(run_id)
    except RunNotFound:
        raise not_found("run") from None
    child_rows = [await srv.store.get_run(c.run_id) for c in children]
    edges = await srv.store.list_edges(run_id)
    expiries = await srv.store.gate_expiries(run_id)
    show_token = is_authenticated(request.scope)
    latest = versions[-1] if versions else None
    return JSONResponse(
        {
            "run": run_json(run),
            "steps": [step_json(run_id, s) for s in steps],
            "state": None
            if latest is None
            else {
                "runId": run_id,
                "value": state,
                "version": latest.version,
                "updatedAt": state_version_json(run_id, latest)["createdAt"],
            },
            "stateStreams": [],
            "stateVersions": [state_version_json(run_id, v) for v in versions],
            "runEdges": [edge_json(e) for e in edges],
            "childRuns": [run_json(c) for c in child_rows if c is not None],
            "recoveryAttempts": [webhook_json(w, i + 1) for i, w in enumerate(webhooks)],
            "channels": [channels.channel_json(c) for c in run_channels],
            "channelDeliveries": [channels.delivery_json(d) for d in deliveries],
            "gates": [
                gate_json(g, show_token=show_token, expires_at=expiries.get(g.name)) for g in gates
            ],
            "usage": [usage_json(u, i + 1) for i, u in enumerate(usage)],
            "events": [event_json(run_id, e) for e in events],
        }
    )


@delivers
async def cancel_run(request: Request) -> JSONResponse:
    """Cancel (one-way, idempotent); a completed run is a refused no-op (409)."""
    srv = server(request)
    run_id = request.path_params["runId"]
    body = await parse_body(request, CancelRun)
    before = await srv.store.get_run(run_id)
    if before is None:
        raise not_found("run")
    if before.status == "completed":
        raise ProtocolError(
            409, "run already completed", code="run_completed", run=run_json(before)
        )
    try:
        await srv.tide.runs.cancel(run_id, reason=body.reason, actor=body.actor)
    except RunNotFound:
        raise not_found("run") from None
    run = await srv.store.get_run(run_id)
    if run is None:
        raise not_found("run")
    if run.status == "completed":  # it completed while we cancelled: the completion stands
        raise ProtocolError(409, "run already completed", code="run_completed", run=run_json(run))
    return JSONResponse({"run": run_json(run)})


routes = [
    Route("/runs", list_runs, methods=["GET"]),
    Route("/runs/{workflowName}", create_run, methods=["POST"]),
    Route("/runs/{runId}", get_run, methods=["GET"]),
    Route("/runs/{runId}/cancel", cancel_run, methods=["POST"]),
]
