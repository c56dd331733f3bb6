"""The Starlette application of ``tidebase serve``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tidebase_core._async.client import AsyncTidebase
from tidebase_core.errors import TidebaseError

from . import (
    broker,
    channels,
    children,
    events,
    gates,
    openapi,
    queues,
    runs,
    state,
    steps,
    workers,
)
from .access_log import AccessLogMiddleware
from .auth import AuthMiddleware
from .deps import Server
from .errors import ProtocolError, handle_error
from .hub import EventHub
from .reconcile import reconcile_every, reconcile_loop
from .store import ProtocolStore
from .studio import mount_studio

__all__ = ["create_app"]

log = logging.getLogger("tidebase.server")

_UNSET: Any = object()


async def health(request: Request) -> JSONResponse:
    """Liveness probe; open even when an API key is set."""
    return JSONResponse({"ok": True})


# Statuses each endpoint may answer besides 401 (for /openapi.json).
_STATUSES: dict[Callable[..., Any], list[int]] = {
    health: [200],
    runs.create_run: [200, 400, 409, 422],
    runs.list_runs: [200, 400],
    runs.get_run: [200, 404],
    runs.cancel_run: [200, 400, 404, 409],
    events.stream_events: [200, 400, 404],
    gates.get_gate: [200, 404],
    gates.resolve_gate: [200, 400, 404, 409, 422],
    gates.begin_gate: [200, 400, 404, 409, 422],
    workers.begin_run: [200, 404, 409],
    workers.heartbeat: [200, 400, 404, 409],
    workers.complete_run: [200, 400, 404, 409],
    workers.fail_run: [200, 400, 404, 409],
    steps.begin_step: [200, 400, 404, 409],
    steps.complete_step: [200, 400, 404, 409],
    steps.fail_step: [200, 400, 404, 409],
    state.get_state: [200, 404],
    state.state_versions: [200, 404],
    state.snapshots: [200, 404],
    state.usage: [200, 404],
    state.set_state: [200, 400, 404, 409, 422],
    state.patch_state: [200, 400, 404, 409, 422],
    state.save_state: [200, 400, 404, 409, 422],
    state.record_usage: [200, 400, 404, 422],
    state.create_snapshot: [200, 400, 404],
    children.create_child: [200, 400, 404, 409, 422],
    queues.enqueue: [200, 400, 422],
    queues.claim: [200, 400],
    queues.list_queues: [200],
    queues.configure_queue: [200, 400],
    queues.put_schedule: [200, 400, 500],
    queues.list_schedules: [200],
    queues.delete_schedule: [200, 400, 404],
    queues.recover_run: [200, 400, 404, 409, 422],
    broker.not_implemented: [501],
    openapi.openapi: [200],
}
for _endpoint, _codes in _STATUSES.items():
    _endpoint.statuses = _codes  # type: ignore[attr-defined]

# The JSON body each endpoint reads (for /openapi.json).
_BODIES: dict[Callable[..., Any], type[BaseModel]] = {
    runs.create_run: runs.CreateRun,
    runs.cancel_run: runs.CancelRun,
    gates.begin_gate: gates.BeginGate,
    gates.resolve_gate: gates.ResolveGate,
    workers.heartbeat: workers.Heartbeat,
    workers.complete_run: workers.CompleteRun,
    workers.fail_run: workers.FailRun,
    steps.begin_step: steps.BeginStep,
    steps.complete_step: steps.CompleteStep,
    steps.fail_step: steps.FailStep,
    state.set_state: state.WriteState,
    state.patch_state: state.WriteState,
    state.save_state: state.SaveState,
    state.record_usage: state.RecordUsage,
    state.create_snapshot: state.CreateSnapshot,
    children.create_child: children.CreateChild,
    queues.enqueue: queues.Enqueue,
    queues.claim: queues.Claim,
    queues.configure_queue: queues.QueueConfig,
    queues.put_schedule: queues.PutSchedule,
    queues.recover_run: queues.Recover,
}
for _endpoint, _model in _BODIES.items():
    _endpoint.body_model = _model  # type: ignore[attr-defined]


async def _sweep(srv: Server) -> None:
    """The server's own part of each reconciler tick: gate timeouts, channel deliveries."""
    await gates.expire_gates(srv)
    await channels.dispatch_backlog(srv)


def create_app(
    tide: AsyncTidebase | None = None,
    *,
    api_key: str | None = _UNSET,
    lease_seconds: float | None = None,
    reconcile_seconds: float | None = _UNSET,
) -> Starlette:
    """The protocol server on ``tide`` (default: an ``AsyncTidebase`` from the environment,
    opened at startup and closed at shutdown; a client passed in is opened but left open).

    ``api_key`` defaults to ``TIDEBASE_API_KEY``; set, every route but ``/health`` requires it.
    ``lease_seconds`` (protocol workers' run and step leases) defaults to ``TIDEBASE_LEASE_MS``
    (upstream's name, in milliseconds), else the client's ``lease_seconds``.
    ``reconcile_seconds`` (the reconciler's tick; None: no reconciler) defaults to
    ``TIDEBASE_RECONCILE_MS`` / ``TIDEBASE_RECONCILER`` (see ``reconcile.py``).
    """
    if api_key is _UNSET:
        api_key = os.environ.get("TIDEBASE_API_KEY")
    if reconcile_seconds is _UNSET:
        reconcile_seconds = reconcile_every()
    owned = tide is None
    client = AsyncTidebase() if tide is None else tide
    if lease_seconds is None and os.environ.get("TIDEBASE_LEASE_MS"):
        lease_seconds = float(os.environ["TIDEBASE_LEASE_MS"]) / 1000
    srv = Server(
        tide=client,
        store=ProtocolStore(client, lease_seconds=lease_seconds),
        api_key=api_key,
        hub=EventHub(client),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if api_key is not None and not api_key:
            log.warning("TIDEBASE_API_KEY is set but empty: every request will be refused")
        await client.open()
        log.info(
            "tidebase server ready on %s (auth %s)",
            client.settings.safe_url,
            "required" if api_key is not None else "off",
        )
        ticking = (
            None
            if reconcile_seconds is None
            else asyncio.create_task(
                reconcile_loop(
                    client,
                    reconcile_seconds,
                    srv.stopping,
                    also=lambda: _sweep(srv),
                )
            )
        )
        try:
            yield
        finally:
            srv.stopping.set()
            if ticking is not None:
                await ticking
            await srv.hub.close()
            if owned:
                await client.close()

    all_routes: list[Any] = [
        Route("/health", health, methods=["GET"]),
        *openapi.routes,
        *broker.routes,
        *events.routes,
        *gates.routes,
        *steps.routes,
        *children.routes,
        *workers.routes,
        *state.routes,
        *queues.routes,
        *runs.routes,
    ]
    app = Starlette(
        routes=all_routes,
        middleware=[
            Middleware(AccessLogMiddleware),
            Middleware(AuthMiddleware, api_key=api_key),
        ],
        exception_handlers={
            ProtocolError: handle_error,
            HTTPException: handle_error,
            TidebaseError: handle_error,
            Exception: handle_error,
        },
        lifespan=lifespan,
    )
    app.state.server = srv
    mount_studio(app)
    return app
