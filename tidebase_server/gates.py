"""Gates: read one (with its run's status, so a polling worker can unwind on cancel) and
resolve it exactly once, with the gate's resolve token or the API key.

A gate opened with ``timeoutMs`` stores when it expires. A pending gate past that is decided
``rejected`` by actor ``timeout`` (payload ``{"reason": "timeout"}``) through the engine's own
resolve, so every waiter sees the same decision: by the server's reconciler tick, and before
any read or resolve of the run's gates over HTTP (so the deadline holds to the request).
"""

from __future__ import annotations

import secrets
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from tidebase_core.errors import (
    GateAlreadyResolved,
    GateNotFound,
    GateTokenMismatch,
    RunCancelled,
    RunNotFound,
)
from tidebase_core.models import GateInfo
from tidebase_core.serialization import encode

from .auth import is_authenticated
from .channels import ChannelSpec, add_channels, checked, delivers
from .deps import Server, server
from .errors import ProtocolError, not_found, parse_body
from .routing import RawRoute as Route
from .wire import decode_id, gate_json

__all__ = ["routes"]


class ResolveGate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    token: str | None = Field(default=None, min_length=1)
    decision: str
    actor: str | None = None
    payload: Any = None


class BeginGate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    data: Any = None
    channels: list[ChannelSpec] | None = None
    capability: Any = None
    timeoutMs: int | None = Field(default=None, gt=0)


def _gate_name(request: Request) -> str:
    """The gate's key from its id (``gate_<base64url of the name>``; a plain name works too)."""
    gate_id: str = request.path_params["gateId"]
    return decode_id("gate", gate_id) or gate_id


async def _gate(request: Request, run_id: str, name: str) -> GateInfo:
    try:
        return await server(request).tide.gates.get(run_id, name)
    except RunNotFound:
        raise not_found("run") from None
    except GateNotFound:
        raise not_found("gate") from None


TIMEOUT_ACTOR = "timeout"


async def expire_gates(srv: Server, run_id: str | None = None) -> int:
    """Decide the pending gates past their timeout (of ``run_id``, or up to 100 of all runs;
    the next tick takes the rest) ``rejected`` by ``timeout``; returns how many it decided."""
    decided = 0
    for gate_run, name in await srv.store.expired_gates(run_id):
        try:
            await srv.tide.gates.resolve(
                gate_run, name, "rejected", actor=TIMEOUT_ACTOR, payload={"reason": "timeout"}
            )
            decided += 1
        except (GateAlreadyResolved, RunCancelled, RunNotFound, GateNotFound):
            pass  # decided (or its run ended) meanwhile: nothing left to expire
    return decided


@delivers
async def begin_gate(request: Request) -> JSONResponse:
    """Open a gate, idempotent per name: ``wait`` while pending, ``return`` once decided
    (``timeoutMs``: decided ``rejected`` by ``timeout`` once it passes).

    The caller (the run's worker) gets the resolve token to hand to whoever decides. While a
    gate is pending the run is ``waiting``.
    """
    srv = server(request)
    run_id = request.path_params["runId"]
    body = await parse_body(request, BeginGate)
    if body.capability is not None:
        raise ProtocolError(
            422,
            "capability is not supported by this server: it belongs to the credential broker",
            code="unsupported",
        )
    specs = checked(body.channels)
    data = {} if body.data is None else body.data
    async with srv.store.transaction() as tx:
        locked = await tx.lock_run(run_id)
        if locked is None:
            raise not_found("run")
        if locked.status == "cancelled":
            raise ProtocolError(409, "run is cancelled", code="run_cancelled")
        opened = await tx.open_gate(
            run_id,
            body.name,
            body.prompt,
            encode(data, what=f"data of gate {body.name!r}"),
            secrets.token_urlsafe(24),
            timeout=None if body.timeoutMs is None else body.timeoutMs / 1000,
        )
        if opened:
            await add_channels(tx, run_id, specs, gate_name=body.name)
            await tx.wait_at_gate(
                run_id,
                encode(
                    {"name": body.name, "prompt": body.prompt, "data": data},
                    what=f"gate {body.name!r} event",
                ),
            )
    await expire_gates(srv, run_id)
    gate = await _gate(request, run_id, body.name)
    expiries = await srv.store.gate_expiries(run_id)
    return JSONResponse(
        {
            "action": "wait" if gate.status == "pending" else "return",
            "gate": gate_json(gate, show_token=True, expires_at=expiries.get(gate.name)),
        }
    )


async def get_gate(request: Request) -> JSONResponse:
    """One gate and its run's status; the resolve token only for an authenticated reader."""
    srv = server(request)
    run_id = request.path_params["runId"]
    await expire_gates(srv, run_id)
    gate = await _gate(request, run_id, _gate_name(request))
    run = await srv.store.get_run(run_id)
    if run is None:
        raise not_found("run")
    expires_at = (await srv.store.gate_expiries(run_id)).get(gate.name)
    return JSONResponse(
        {
            "gate": gate_json(
                gate, show_token=is_authenticated(request.scope), expires_at=expires_at
            ),
            "runStatus": run.status,
        }
    )


@delivers
async def resolve_gate(request: Request) -> JSONResponse:
    """Decide a pending gate once: 200 for the winner, 409 for every later or losing try."""
    srv = server(request)
    run_id = request.path_params["runId"]
    name = _gate_name(request)
    body = await parse_body(request, ResolveGate)
    authenticated = is_authenticated(request.scope)
    if body.decision == "canceled":
        raise ProtocolError(
            422,
            "decision 'canceled' is not supported: decide 'approved' or 'rejected', or cancel "
            "the run (POST /runs/{runId}/cancel)",
            code="unsupported",
        )
    if body.decision not in ("approved", "rejected"):
        raise ProtocolError(
            400,
            "invalid request body",
            code="invalid_request",
            issues=[{"path": ["decision"], "message": "expected 'approved' or 'rejected'"}],
        )
    if body.token is None and not authenticated:
        raise ProtocolError(
            400,
            "invalid request body",
            code="invalid_request",
            issues=[
                {
                    "path": ["token"],
                    "message": "the gate's resolve token is required (or authenticate with the "
                    "API key)",
                }
            ],
        )
    await expire_gates(srv, run_id)  # a decision after the deadline loses to the timeout
    await _gate(request, run_id, name)  # 404 for an unknown run or gate
    try:
        await srv.tide.gates.resolve(
            run_id,
            name,
            body.decision,
            actor=body.actor,
            token=body.token,
            payload=body.payload,
        )
    except GateTokenMismatch:
        raise ProtocolError(409, "invalid resolve token", code="invalid_token") from None
    except RunCancelled:
        raise ProtocolError(409, "run is cancelled", code="run_cancelled") from None
    except GateAlreadyResolved as exc:
        raise ProtocolError(409, str(exc), code="gate_already_resolved") from None
    gate = await _gate(request, run_id, name)
    expires_at = (await srv.store.gate_expiries(run_id)).get(name)
    return JSONResponse({"gate": gate_json(gate, show_token=authenticated, expires_at=expires_at)})


routes = [
    Route("/runs/{runId}/gates/begin", begin_gate, methods=["POST"]),
    Route("/runs/{runId}/gates/{gateId}", get_gate, methods=["GET"]),
    Route("/runs/{runId}/gates/{gateId}/resolve", resolve_gate, methods=["POST"]),
]
