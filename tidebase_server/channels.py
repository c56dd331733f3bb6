"""Webhook channels: ``channels: [{type: "webhook", url, secret?, events?}]`` on a run (create,
child, enqueue) or on a gate (gates/begin) get the run's events POSTed to ``url``.

The run's event log is the outbox. Each channel remembers how far it was delivered
(``delivered_seq``); whoever delivers takes the channel for a while (a lease in the row, not a
held transaction, so a slow endpoint never blocks the run's writers or holds a connection),
POSTs each matching event in order, records each attempt in ``channel_deliveries`` (delivered,
or failed with the status or error) and moves the position on. At least once: an attempt cut
before it is recorded is sent again.

Deliveries are made right after the HTTP write that produced the event (before its answer, as
upstream), and by the server's tick for events written by anyone else (in-process workers).
The body is upstream's: ``{type, runId, gateId, deliveryId, payload}``, signed
``x-tidebase-signature: sha256=<hmac of the body with the channel's secret>`` when it has one.
Event types are upstream's names: ``gate.opened`` is sent as ``gate.created``, ``state.saved``
as ``state.updated``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from tidebase_core._acompat import run_blocking
from tidebase_core.errors import GateNotFound, RunNotFound
from tidebase_core.serialization import encode
from tidebase_core.webhooks import post

from .deps import Server, server
from .errors import check_url
from .store import ChannelRow, DeliveryRow, ProtocolTx
from .wire import encode_id, gate_json, iso, run_json

__all__ = [
    "ChannelSpec",
    "add_channels",
    "channel_json",
    "delivers",
    "delivery_json",
    "dispatch",
    "dispatch_backlog",
]

log = logging.getLogger("tidebase.server")

LEASE_SECONDS = 30.0
# This project's event type → the type a channel receives (others are not sent, as upstream).
DELIVERED = {
    "run.completed": "run.completed",
    "run.failed": "run.failed",
    "run.cancelled": "run.cancelled",
    "gate.opened": "gate.created",
    "gate.resolved": "gate.resolved",
    "state.updated": "state.updated",
    "state.saved": "state.updated",
    "step.failed": "step.failed",
    "usage.recorded": "usage.recorded",
}
GATE_EVENTS = frozenset({"gate.opened", "gate.resolved"})


class ChannelSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["webhook"]
    url: str = Field(min_length=1)
    secret: str | None = None
    events: list[str] | None = None


def checked(specs: list[ChannelSpec] | None, field: str = "channels") -> list[ChannelSpec]:
    """The channels, each URL an absolute http(s) one (else 400 naming it)."""
    for i, spec in enumerate(specs or []):
        check_url(spec.url, f"{field}.{i}.url")
    return list(specs or [])


async def add_channels(
    tx: ProtocolTx, run_id: str, specs: list[ChannelSpec], gate_name: str | None = None
) -> None:
    for spec in specs:
        await tx.add_channel(
            run_id,
            url=spec.url,
            secret=spec.secret,
            events=encode(spec.events or [], what="channel events"),
            gate_name=gate_name,
        )


def channel_json(channel: ChannelRow) -> dict[str, Any]:
    """A channel as upstream shows it, its secret withheld (``hasSecret`` says if it has one)."""
    return {
        "id": str(channel.id),
        "runId": channel.run_id,
        "gateId": None if channel.gate_name is None else encode_id("gate", channel.gate_name),
        "type": "webhook",
        "config": {"url": channel.url, "secret": None},
        "hasSecret": channel.secret is not None,
        "events": channel.events,
        "createdAt": iso(channel.created_at),
    }


def delivery_json(delivery: DeliveryRow) -> dict[str, Any]:
    return {
        "id": str(delivery.id),
        "runId": delivery.run_id,
        "channelId": str(delivery.channel_id),
        "gateId": None if delivery.gate_name is None else encode_id("gate", delivery.gate_name),
        "eventType": delivery.event_type,
        "payload": delivery.payload,
        "status": delivery.status,
        "httpStatus": delivery.http_status,
        "responseBody": None,
        "errorText": delivery.error_text,
        "createdAt": iso(delivery.created_at),
        "completedAt": iso(delivery.completed_at),
    }


async def _payload(srv: Server, run_id: str, event_type: str, event: Any) -> dict[str, Any]:
    """Upstream's payload of a delivered event: the run for run.*, the gate for gate.*."""
    if event_type.startswith("run."):
        run = await srv.store.get_run(run_id)
        body: dict[str, Any] = {"run": None if run is None else run_json(run)}
        if event_type == "run.failed" and run is not None:
            body["error"] = run.error
        return body
    if event_type in ("gate.created", "gate.resolved") and isinstance(event, dict):
        try:
            gate = await srv.tide.gates.get(run_id, str(event.get("name")))
        except (RunNotFound, GateNotFound):
            return dict(event)
        public = gate_json(gate, show_token=True)  # the run's creator chose this receiver
        public["resolveUrl"] = f"/runs/{run_id}/gates/{public['id']}/resolve"
        return {"gate": public}
    return event if isinstance(event, dict) else {"value": event}


async def _deliver_channel(srv: Server, channel: ChannelRow) -> int:
    """Deliver the channel's undelivered events; returns how many were POSTed."""
    sent = 0
    try:
        events = await srv.tide.runs.events(channel.run_id, after_seq=channel.delivered_seq)
    except RunNotFound:
        return 0
    for event in events:
        kind = DELIVERED.get(event.type)
        payload = event.payload if isinstance(event.payload, dict) else {}
        wanted = (
            kind is not None
            and (not channel.events or kind in channel.events)
            and (
                channel.gate_name is None
                or (event.type in GATE_EVENTS and payload.get("name") == channel.gate_name)
            )
        )
        if wanted and kind is not None:
            body_payload = await _payload(srv, channel.run_id, kind, event.payload)
            delivery_id = await srv.store.insert_delivery(
                channel, event.seq, kind, encode(body_payload, what="channel payload")
            )
            gate_id = None
            if channel.gate_name is not None or event.type in GATE_EVENTS:
                name = channel.gate_name or payload.get("name")
                gate_id = encode_id("gate", str(name)) if name else None
            body = json.dumps(
                {
                    "type": kind,
                    "runId": channel.run_id,
                    "gateId": gate_id,
                    "deliveryId": str(delivery_id),
                    "payload": body_payload,
                },
                separators=(",", ":"),
            ).encode("utf-8")
            code, error = await run_blocking(
                post, channel.url, body, secret=channel.secret, user_agent="tidebase-channel"
            )
            await srv.store.finish_delivery(
                delivery_id,
                status="delivered" if error is None else "failed",
                http_status=code,
                error_text=error,
            )
            if error is not None:
                log.warning("channel %s of run %s: %s", channel.url, channel.run_id, error)
            sent += 1
        await srv.store.advance_channel(channel.id, event.seq)
    return sent


async def dispatch(srv: Server, run_id: str) -> int:
    """Deliver what the run's channels have not been given yet (channels someone else is
    delivering right now are left to them); returns how many events were POSTed."""
    sent = 0
    for channel in await srv.store.list_channels(run_id):
        taken = await srv.store.acquire_channel(channel.id, LEASE_SECONDS)
        if taken is None:
            continue
        try:
            sent += await _deliver_channel(srv, taken)
        finally:
            await srv.store.release_channel(channel.id)
    return sent


async def dispatch_backlog(srv: Server) -> int:
    """The tick's part: deliver events of every run a channel is behind on."""
    sent = 0
    for run_id in await srv.store.channel_backlog():
        sent += await dispatch(srv, run_id)
    return sent


Endpoint = Callable[[Request], Awaitable[Response]]


def delivers(endpoint: Endpoint) -> Endpoint:
    """Route decorator: after a successful write to run ``runId``, deliver its channels'
    events before answering (upstream's order; the write itself is committed already)."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        response = await endpoint(request)
        if response.status_code < 400:
            srv = server(request)
            try:
                await dispatch(srv, request.path_params["runId"])
            except Exception:  # a delivery problem never fails the write that was made
                log.exception("channel delivery after %s failed", request.url.path)
        return response

    return wrapper
