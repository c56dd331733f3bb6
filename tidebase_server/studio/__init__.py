"""Studio: the browser UI at ``/studio`` (DESIGN §8).

Two parts:

- the page itself, static files shipped in this package (``static/``: HTML, CSS and ES modules
  written here, no build step). They hold no data, so they are served without the API key: the
  page asks for the key and sends it on every data request.
- read-only JSON under ``/studio/api/`` for what the v0.7 protocol routes do not answer in one
  request (runs filtered by status and workflow, a run's timeline with usage by step and model
  and its tree of children, queues and schedules). They go through the API key check like every
  other route and read only through the server's ``AsyncTidebase``.

Studio's actions (cancel a run, approve or reject a gate) use the protocol routes
(``POST /runs/{id}/cancel``, ``POST /runs/{id}/gates/{gateId}/resolve``), so they obey the
same rules as any other client.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from tidebase_core.errors import RunNotFound
from tidebase_core.models import RunInfo, StepInfo, UsageRecord
from tidebase_core.queue_models import QueueInfo, Schedule

from ..auth import AuthMiddleware
from ..deps import server
from ..errors import ProtocolError, not_found
from ..routing import RawRoute as Route
from ..wire import encode_id, gate_json, iso

__all__ = ["STATIC", "StudioFiles", "mount_studio", "routes"]

STATIC = Path(__file__).resolve().parent / "static"
PREFIX = "/studio"
API = f"{PREFIX}/api/"
PREVIEW_CHARS = 400
TREE_MAX_DEPTH = 6
TREE_MAX_RUNS = 200

# The page loads only its own files and talks only to this origin.
_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


# Not left to the platform's MIME table (some map .js to text/plain: module scripts then fail).
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
}


class StudioFiles:
    """Serves Studio's static files at ``/studio/`` ahead of the API key check; every other
    path (``/studio/api/…`` included) goes on to the app unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.files = StaticFiles(directory=STATIC, html=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        if path.startswith(API):
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            await Response("method not allowed", status_code=405)(scope, receive, send)
            return
        if path == PREFIX:  # relative asset paths need the trailing slash
            await RedirectResponse(PREFIX + "/", status_code=307)(scope, receive, send)
            return
        inner = {**scope, "path": path[len(PREFIX) :], "root_path": ""}
        suffix = Path(path).suffix if not path.endswith("/") else ".html"
        extra = {**_PAGE_HEADERS}
        if suffix in _TYPES:
            extra["content-type"] = _TYPES[suffix]

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                if message["status"] >= 400:  # StaticFiles' plain-text 404
                    extra.pop("content-type", None)
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower().decode("latin-1") not in extra
                ]
                headers += [(k.encode(), v.encode()) for k, v in extra.items()]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.files(inner, receive, send_with_headers)
        except HTTPException as exc:  # no such file: answered here, not as a server error
            await PlainTextResponse(exc.detail, status_code=exc.status_code)(scope, receive, send)


def _preview(value: Any) -> str | None:
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _money(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _run(run: RunInfo) -> dict[str, Any]:
    error = run.error or {}
    return {
        "id": run.run_id,
        "workflow": run.workflow_name,
        "status": run.status.value,
        "attempt": run.attempt,
        "failureClass": run.failure_class,
        "error": error.get("message") or error.get("type") if error else None,
        "inputPreview": _preview(run.input),
        "resultPreview": _preview(run.result),
        "createdAt": iso(run.created_at),
        "updatedAt": iso(run.updated_at),
        "completedAt": iso(run.completed_at),
    }


def _step_status(step: StepInfo) -> str:
    """As the protocol words it: a step that did not complete shows why it is stuck
    (``manual_review``: parked until an operator decides; ``failed_retryable``: will retry)."""
    if step.status != "completed" and step.resume_decision in ("manual_review", "failed_retryable"):
        return str(step.resume_decision)
    return step.status.value


def _step(step: StepInfo) -> dict[str, Any]:
    error = step.error or {}
    return {
        "id": encode_id("step", step.name),
        "name": step.name,
        "status": _step_status(step),
        "inputHash": step.input_hash,
        "attempt": step.attempt,
        "resumeDecision": step.resume_decision,
        "outputPreview": _preview(step.output),
        "error": error.get("message") or error.get("type") if error else None,
        "seq": step.seq,
        "updatedAt": iso(step.updated_at),
    }


def _usage_totals(records: list[UsageRecord], key: Callable[[UsageRecord], str]) -> list[Any]:
    """Calls, tokens and cost per ``key``, in first-seen order."""
    groups: dict[str, dict[str, Any]] = {}
    for r in records:
        name = key(r)
        g = groups.setdefault(
            name,
            {"name": name, "calls": 0, "inputTokens": 0, "outputTokens": 0, "totalTokens": 0,
             "costUsd": Decimal(0), "unpricedCalls": 0},
        )  # fmt: skip
        g["calls"] += 1
        g["inputTokens"] += r.input_tokens or 0
        g["outputTokens"] += r.output_tokens or 0
        g["totalTokens"] += r.total_tokens or (r.input_tokens or 0) + (r.output_tokens or 0)
        if r.cost_usd is None:
            g["unpricedCalls"] += 1
        else:
            g["costUsd"] += r.cost_usd
    return [{**g, "costUsd": float(g["costUsd"])} for g in groups.values()]


def _budget(run: Any) -> dict[str, Any] | None:
    """The budget governing the run and what its run tree spent against it, if it has one."""
    if run.budget is None:
        return None
    caps = run.budget.model_dump(mode="json", exclude_none=True)
    spend = run.spend.model_dump(mode="json") if run.spend is not None else {}
    return {"holder": run.budget_run_id, "caps": caps, "spend": spend}


def _model_name(r: UsageRecord) -> str:
    if r.model is None:
        return r.provider or r.kind
    return r.model if r.provider is None else f"{r.provider}/{r.model}"


async def _tree(request: Request, run_id: str) -> list[dict[str, Any]]:
    """The run's descendants as nested ``{run, children}`` (bounded in depth and size)."""
    tide = server(request).tide
    seen = 0

    async def below(parent: str, depth: int) -> list[dict[str, Any]]:
        nonlocal seen
        if depth > TREE_MAX_DEPTH or seen >= TREE_MAX_RUNS:
            return []
        nodes = []
        for child in await tide.runs.children(parent):
            seen += 1
            if seen > TREE_MAX_RUNS:
                break
            nodes.append({"run": _run(child), "children": await below(child.run_id, depth + 1)})
        return nodes

    return await below(run_id, 1)


async def info(request: Request) -> JSONResponse:
    """Whether this server requires the API key (Studio's first request, to check the key)."""
    return JSONResponse({"auth": server(request).api_key is not None, "studio": 1})


async def list_runs(request: Request) -> JSONResponse:
    """Runs newest first, filtered by ``?status=`` and ``?workflow=`` (``?limit=`` 1..1000)."""
    query = request.query_params
    raw = query.get("limit", "200")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise ProtocolError(400, "limit must be an integer from 1 to 1000", code="invalid_request")
    try:
        runs = await server(request).tide.runs.list(
            status=query.get("status") or None,
            workflow=query.get("workflow") or None,
            limit=int(raw),
        )
    except ValueError as exc:
        raise ProtocolError(400, str(exc), code="invalid_request") from None
    return JSONResponse({"runs": [_run(r) for r in runs]})


async def get_run(request: Request) -> JSONResponse:
    """A run as Studio shows it: timeline, state and versions, gates, usage by step and
    model, and its tree of child runs (events stream from ``/runs/{runId}/events``)."""
    tide = server(request).tide
    run_id = request.path_params["runId"]
    try:
        run = await tide.runs.get(run_id)
        steps = await tide.runs.steps(run_id)
        state = await tide.runs.state(run_id)
        versions = await tide.runs.state_versions(run_id)
        gates = await tide.gates.list(run_id=run_id, limit=1000)
        records = await tide.usage.records(run_id)
        tree = await _tree(request, run_id)
    except RunNotFound:
        raise not_found("run") from None
    except ValueError as exc:  # a malformed run id
        raise ProtocolError(400, str(exc), code="invalid_request") from None
    steps.sort(key=lambda s: (s.seq is None, s.seq or 0, s.updated_at))
    priced = [r.cost_usd for r in records if r.cost_usd is not None]
    return JSONResponse(
        {
            "run": _run(run),
            "steps": [_step(s) for s in steps],
            "state": {"value": state, "version": versions[-1].version if versions else None},
            "stateVersions": [
                {
                    "version": v.version,
                    "labels": list(v.labels),
                    "preview": _preview(v.value),
                    "createdAt": iso(v.created_at),
                }
                for v in reversed(versions)
            ],
            "gates": [gate_json(g, show_token=False) for g in gates],
            "usage": {
                "calls": len(records),
                "inputTokens": sum(r.input_tokens or 0 for r in records),
                "outputTokens": sum(r.output_tokens or 0 for r in records),
                "costUsd": _money(sum(priced, Decimal(0))),
                "unpricedCalls": len(records) - len(priced),
                "byStep": _usage_totals(records, lambda r: r.step_name or "(outside a step)"),
                "byModel": _usage_totals(records, _model_name),
                "byAgent": _usage_totals(records, lambda r: r.agent or "(no agent)")
                if any(r.agent for r in records)
                else [],
                "byAttempt": _usage_totals(records, lambda r: f"attempt {r.attempt}"),
            },
            "budget": _budget(run),
            "children": tree,
        }
    )


def _queue(q: QueueInfo) -> dict[str, Any]:
    return {
        "name": q.name,
        "depth": q.depth,
        "running": q.running,
        "concurrency": q.concurrency,
        "ratePerMinute": q.rate_per_minute,
        "invokeUrl": q.invoke_url,
    }


def _schedule(s: Schedule) -> dict[str, Any]:
    return {
        "name": s.name,
        "cron": s.cron,
        "workflow": s.workflow_name,
        "queue": s.queue,
        "enabled": s.enabled,
        "nextFireAt": iso(s.next_fire_at),
        "lastFiredAt": iso(s.last_fired_at),
        "maxAttempts": s.max_attempts,
        "inputPreview": _preview(s.input),
    }


async def queues(request: Request) -> JSONResponse:
    """Queues (depth, running, caps) and schedules."""
    tide = server(request).tide
    found = await tide.queues.list()
    schedules = await tide.schedules.list()
    return JSONResponse(
        {"queues": [_queue(q) for q in found], "schedules": [_schedule(s) for s in schedules]}
    )


_Endpoint = Callable[[Request], Awaitable[Response]]
_STATUSES: dict[_Endpoint, list[int]] = {
    info: [200],
    list_runs: [200, 400],
    get_run: [200, 400, 404],
    queues: [200],
}
for _endpoint, _codes in _STATUSES.items():
    _endpoint.statuses = _codes  # type: ignore[attr-defined]

routes = [
    Route(f"{API}info", info, methods=["GET"]),
    Route(f"{API}runs", list_runs, methods=["GET"]),
    Route(f"{API}runs/{{runId}}", get_run, methods=["GET"]),
    Route(f"{API}queues", queues, methods=["GET"]),
]


def _is(a: object, b: object) -> bool:
    return a is b


def mount_studio(app: Starlette) -> None:
    """Add Studio to the protocol app: its JSON routes, and its static files served just
    outside the API key check (so the page can load and ask for the key)."""
    app.router.routes.extend(routes)
    at = next(
        (i for i, m in enumerate(app.user_middleware) if _is(m.cls, AuthMiddleware)),
        len(app.user_middleware),
    )
    app.user_middleware.insert(at, Middleware(StudioFiles))
