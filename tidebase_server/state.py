"""Reads of a run's live state, its versions, labeled snapshots and usage ledger.

This project keeps one state stream per run (upstream's default stream, ``main``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from tidebase_core.errors import RunNotFound

from .deps import server
from .errors import not_found
from .routing import RawRoute as Route
from .wire import state_version_json, usage_json

__all__ = ["routes"]

MAIN_STREAM = "main"


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
    """Every version in order (``?labeled=true``: only labeled ones; ``?stream=``: ``main``)."""
    run_id = request.path_params["runId"]
    stream = request.query_params.get("stream")
    labeled = request.query_params.get("labeled") == "true"
    try:
        versions = await server(request).tide.runs.state_versions(run_id, labeled=labeled)
    except RunNotFound:
        raise not_found("run") from None
    if stream is not None and stream != MAIN_STREAM:
        versions = []
    return JSONResponse({"stateVersions": [state_version_json(run_id, v) for v in versions]})


async def snapshots(request: Request) -> JSONResponse:
    """The labeled versions, newest first."""
    run_id = request.path_params["runId"]
    try:
        versions = await server(request).tide.runs.state_versions(run_id, labeled=True)
    except RunNotFound:
        raise not_found("run") from None
    return JSONResponse({"snapshots": [state_version_json(run_id, v) for v in reversed(versions)]})


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
    Route("/runs/{runId}/state/versions", state_versions, methods=["GET"]),
    Route("/runs/{runId}/snapshots", snapshots, methods=["GET"]),
    Route("/runs/{runId}/usage", usage, methods=["GET"]),
]
