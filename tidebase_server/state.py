"""A run's live state (set, merge patch, save a label; read, versions, labeled snapshots)
and its usage ledger (record, read).

This project keeps one state stream per run: upstream's default stream, ``run``. State writes
name no worker (as upstream) but a finished run's state is final (409). Snapshots are labeled
values in streams of their own (``run:<runId>`` by default), as upstream's; they never change
the run's state.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from tidebase_core._run_base import usage_params
from tidebase_core.errors import RunNotFound
from tidebase_core.models import StateVersion
from tidebase_core.serialization import encode
from tidebase_core.store.records import StateNote

from .channels import delivers
from .deps import server
from .errors import ProtocolError, not_found, parse_body
from .routing import RawRoute as Route
from .wire import decode_id, encode_id, iso, snapshot_json, state_version_json, usage_json

__all__ = ["routes"]

MAIN_STREAM = "run"


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class WriteState(_Body):
    value: Any = None
    stream: str | None = Field(default=None, min_length=1)
    label: str | None = Field(default=None, min_length=1)
    reason: str | None = None
    importance: Literal["transient", "normal", "checkpoint", "milestone"] | None = None
    metadata: dict[str, Any] | None = None
    createdBy: str | None = None


class SaveState(_Body):
    stream: str | None = Field(default=None, min_length=1)
    label: str = Field(min_length=1)
    reason: str | None = None
    importance: Literal["transient", "normal", "checkpoint", "milestone"] | None = None
    metadata: dict[str, Any] | None = None
    createdBy: str | None = None


class SnapshotTarget(_Body):
    type: str = Field(min_length=1)
    id: str = Field(min_length=1)


class CreateSnapshot(_Body):
    label: str = Field(min_length=1)
    target: SnapshotTarget | None = None
    state: Any = None
    reason: str | None = None
    metadata: dict[str, Any] | None = None
    createdBy: str | None = None


class RecordUsage(_Body):
    stepId: str | None = None
    kind: str | None = Field(default=None, min_length=1)
    provider: str | None = None
    model: str | None = None
    label: str | None = None
    quantity: float | None = Field(default=None, ge=0)
    unit: str | None = None
    inputTokens: int | None = Field(default=None, ge=0)
    outputTokens: int | None = Field(default=None, ge=0)
    totalTokens: int | None = Field(default=None, ge=0)
    costUsd: float | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None


def _refuse_unsupported(body: BaseModel, fields: tuple[str, ...], hint: str = "") -> None:
    for name in fields:
        if getattr(body, name) is not None:
            raise ProtocolError(
                422, f"{name} is not supported by this server yet{hint}", code="unsupported"
            )


def _state_json(run_id: str, version: StateVersion) -> dict[str, Any]:
    return {
        "runId": run_id,
        "value": version.value,
        "version": version.version,
        "updatedAt": iso(version.created_at),
    }


async def _write_state(request: Request, *, patch: bool) -> JSONResponse:
    srv = server(request)
    run_id = request.path_params["runId"]
    body = await parse_body(request, WriteState)
    if body.stream not in (None, MAIN_STREAM):
        raise ProtocolError(
            422,
            f"only the run's own state stream ({MAIN_STREAM!r}) is supported",
            code="unsupported",
        )
    note = StateNote.of(
        reason=body.reason,
        importance=body.importance,
        metadata=body.metadata,
        created_by=body.createdBy,
    )
    value = {} if body.value is None else body.value
    if patch and not isinstance(value, dict):
        raise ProtocolError(
            400,
            "invalid request body",
            code="invalid_request",
            issues=[{"path": ["value"], "message": "a merge patch is a JSON object"}],
        )
    async with srv.store.transaction() as tx:
        locked = await tx.lock_run(run_id)
        if locked is None:
            raise not_found("run")
        _check_live(locked.status)
        version = await tx.write_state(run_id, encode(value, what="state"), patch=patch, note=note)
        if version is not None and body.label is not None:
            version = await tx.save_state(run_id, body.label)
    if version is None:
        raise ProtocolError(409, "run is finished", code="run_finished")
    return JSONResponse({"state": _state_json(run_id, version)})


def _check_live(status: str) -> None:
    if status == "cancelled":
        raise ProtocolError(409, "run is cancelled", code="run_cancelled")
    if status == "completed":
        raise ProtocolError(409, "run already completed", code="run_completed")


@delivers
async def set_state(request: Request) -> JSONResponse:
    """Replace the state (one more version)."""
    return await _write_state(request, patch=False)


@delivers
async def patch_state(request: Request) -> JSONResponse:
    """Merge-patch the state (RFC 7386: null removes a key; one more version)."""
    return await _write_state(request, patch=True)


@delivers
async def save_state(request: Request) -> JSONResponse:
    """Label the current version without changing the value; 404 before any state."""
    srv = server(request)
    run_id = request.path_params["runId"]
    body = await parse_body(request, SaveState)
    if body.stream not in (None, MAIN_STREAM):
        raise ProtocolError(
            422,
            f"only the run's own state stream ({MAIN_STREAM!r}) is supported",
            code="unsupported",
        )
    _refuse_unsupported(
        body,
        ("reason", "importance", "metadata", "createdBy"),
        " on state/save, which labels the current version instead of writing a new one: give "
        "it with the write that makes the version (PUT or PATCH /runs/{runId}/state, with "
        "label to save it at once)",
    )
    async with srv.store.transaction() as tx:
        locked = await tx.lock_run(run_id)
        if locked is None:
            raise not_found("run")
        _check_live(locked.status)
        version = await tx.save_state(run_id, body.label)
    if version is None:
        raise ProtocolError(404, "run state not found", code="not_found")
    return JSONResponse({"stateVersion": state_version_json(run_id, version)})


@delivers
async def record_usage(request: Request) -> JSONResponse:
    """One ledger row (priced from genai-prices when ``costUsd`` is missing and the model is
    known); recorded on any run, finished or not — spent tokens were spent."""
    srv = server(request)
    run_id = request.path_params["runId"]
    body = await parse_body(request, RecordUsage)
    run = await srv.store.get_run(run_id)
    if run is None:
        raise not_found("run")
    step = None if body.stepId is None else (decode_id("step", body.stepId) or body.stepId)
    usage = usage_params(
        run_id=run_id,
        attempt=run.attempt,
        step=step,
        kind=body.kind or "custom",
        provider=body.provider,
        model=body.model,
        input_tokens=body.inputTokens,
        output_tokens=body.outputTokens,
        total_tokens=body.totalTokens,
        cost_usd=body.costUsd,
        label=body.label,
        metadata=body.metadata,
        quantity=body.quantity,
        unit=body.unit,
    )
    async with srv.store.transaction() as tx:
        if not await tx.record_usage(usage):
            raise not_found("run")
    return JSONResponse(
        {
            "usage": {
                "id": None,
                "runId": run_id,
                "stepId": None if step is None else encode_id("step", step),
                "stepName": step,
                "attempt": usage.attempt,
                "kind": usage.kind,
                "provider": usage.provider,
                "model": usage.model,
                "label": usage.label,
                "quantity": None if usage.quantity is None else float(usage.quantity),
                "unit": usage.unit,
                "inputTokens": usage.input_tokens,
                "outputTokens": usage.output_tokens,
                "totalTokens": usage.total_tokens,
                "costUsd": None if usage.cost_usd is None else float(usage.cost_usd),
                "costSource": usage.cost_source,
                "metadata": {} if body.metadata is None else body.metadata,
                "createdAt": iso(datetime.now(UTC)),
            }
        }
    )


async def create_snapshot(request: Request) -> JSONResponse:
    """Record ``state`` under ``label`` as the next version of the stream
    ``<target.type>:<target.id>`` (default ``run:<runId>``), logged ``snapshot.created``:
    ``{snapshot}``. The run's own state is left as it is."""
    srv = server(request)
    run_id = request.path_params["runId"]
    body = await parse_body(request, CreateSnapshot)
    target = body.target or SnapshotTarget(type="run", id=run_id)
    async with srv.store.transaction() as tx:
        if await tx.lock_run(run_id) is None:
            raise not_found("run")
        snapshot = await tx.insert_snapshot(
            run_id,
            stream=f"{target.type}:{target.id}",
            label=body.label,
            value=encode({} if body.state is None else body.state, what="snapshot state"),
            reason=body.reason,
            metadata=None if body.metadata is None else encode(body.metadata, what="metadata"),
            created_by=body.createdBy,
        )
        public = snapshot_json(run_id, snapshot)
        keys = ("id", "streamId", "runId", "version", "label", "reason", "importance", "createdAt")
        await tx.append_event(
            run_id,
            "snapshot.created",
            encode({"stateVersion": {k: public[k] for k in keys}}, what="event"),
        )
    return JSONResponse({"snapshot": public})


async def get_state(request: Request) -> JSONResponse:
    """The run's current state: ``{"state": {runId, value, version, updatedAt} | null}``."""
    run_id = request.path_params["runId"]
    try:
        versions = await server(request).tide.runs.state_versions(run_id)
    except RunNotFound:
        raise not_found("run") from None
    if not versions:
        return JSONResponse({"state": None})
    latest = state_version_json(run_id, versions[-1])
    return JSONResponse(
        {
            "state": {
                "runId": run_id,
                "value": latest["value"],
                "version": latest["version"],
                "updatedAt": latest["createdAt"],
            }
        }
    )


async def state_versions(request: Request) -> JSONResponse:
    """Every version in order, by stream (``?labeled=true``: only labeled ones; ``?stream=``:
    ``run`` for the run's state, or a snapshot stream)."""
    srv = server(request)
    run_id = request.path_params["runId"]
    stream = request.query_params.get("stream")
    labeled = request.query_params.get("labeled") == "true"
    try:
        versions = await srv.tide.runs.state_versions(run_id, labeled=labeled)
    except RunNotFound:
        raise not_found("run") from None
    listed = (
        []
        if stream not in (None, MAIN_STREAM)
        else [state_version_json(run_id, v) for v in versions]
    )
    if stream != MAIN_STREAM:
        listed += [
            snapshot_json(run_id, snap)
            for snap in await srv.store.list_snapshots(run_id)
            if stream is None or snap.stream == stream
        ]
    return JSONResponse({"stateVersions": listed})


async def snapshots(request: Request) -> JSONResponse:
    """The labeled versions of the run's state and its snapshots, newest first."""
    srv = server(request)
    run_id = request.path_params["runId"]
    try:
        versions = await srv.tide.runs.state_versions(run_id, labeled=True)
    except RunNotFound:
        raise not_found("run") from None
    dated = [(v.created_at, state_version_json(run_id, v)) for v in versions]
    dated += [
        (x.created_at, snapshot_json(run_id, x)) for x in await srv.store.list_snapshots(run_id)
    ]
    dated.sort(key=lambda pair: pair[0], reverse=True)
    return JSONResponse({"snapshots": [json for _, json in dated]})


async def usage(request: Request) -> JSONResponse:
    """The run's usage ledger and its summary (this server's extension of the protocol)."""
    srv = server(request)
    run_id = request.path_params["runId"]
    if await srv.store.get_run(run_id) is None:
        raise not_found("run")
    records = await srv.tide.usage.records(run_id)
    summary = await srv.tide.usage.summary(run_id)
    return JSONResponse(
        {
            "usage": [usage_json(r, i + 1) for i, r in enumerate(records)],
            "summary": {
                "calls": summary.calls,
                "inputTokens": summary.input_tokens,
                "outputTokens": summary.output_tokens,
                "totalTokens": summary.total_tokens,
                "costUsd": float(summary.cost_usd),
                "byModel": [
                    {
                        "provider": m.provider,
                        "model": m.model,
                        "calls": m.calls,
                        "inputTokens": m.input_tokens,
                        "outputTokens": m.output_tokens,
                        "totalTokens": m.total_tokens,
                        "costUsd": float(m.cost_usd),
                        "pricedCalls": m.priced_calls,
                    }
                    for m in summary.by_model
                ],
            },
        }
    )


routes = [
    Route("/runs/{runId}/state", get_state, methods=["GET"]),
    Route("/runs/{runId}/state", set_state, methods=["PUT"]),
    Route("/runs/{runId}/state", patch_state, methods=["PATCH"]),
    Route("/runs/{runId}/state/save", save_state, methods=["POST"]),
    Route("/runs/{runId}/usage", record_usage, methods=["POST"]),
    Route("/runs/{runId}/state/versions", state_versions, methods=["GET"]),
    Route("/runs/{runId}/snapshots", snapshots, methods=["GET"]),
    Route("/runs/{runId}/snapshots", create_snapshot, methods=["POST"]),
    Route("/runs/{runId}/usage", usage, methods=["GET"]),
]
