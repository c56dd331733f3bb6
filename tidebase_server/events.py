"""``GET /runs/{runId}/events``: the run's log as server-sent events.

Backlog first (events after ``?after=`` or the ``Last-Event-ID`` a reconnecting EventSource
sends), then live events as they are written, woken by Postgres LISTEN/NOTIFY through the
server's ``EventHub`` (one LISTEN connection for all streams) — so a run driven by any process
or any server replica streams here.
Each event is ``id: <seq>`` and ``data: <the event as JSON>``; the stream ends after the run's
terminal event (completed, cancelled, or failed and not resumed), when the client goes away,
or when the server shuts down. A comment line is sent every 15 s so proxies keep it open.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

from tidebase_core.errors import RunNotFound
from tidebase_core.models import Event

from .deps import Server, server
from .errors import ProtocolError, not_found
from .routing import RawRoute as Route
from .wire import event_json

__all__ = ["routes"]

KEEPALIVE_SECONDS = 15.0
_BATCH = 500
# A stream ends after these; after run.failed only while nothing follows it (not resumed).
_ENDS = frozenset({"run.completed", "run.cancelled"})


def _seq(value: str, what: str) -> int:
    if not value.isdigit():
        raise ProtocolError(400, f"{what} must be an integer >= 0", code="invalid_request")
    return int(value)


def _frame(run_id: str, event: Event) -> str:
    data = json.dumps(event_json(run_id, event), separators=(",", ":"), ensure_ascii=False)
    return f"id: {event.seq}\ndata: {data}\n\n"


async def _stream(srv: Server, run_id: str, after: int) -> AsyncIterator[str]:
    """Catch up by seq, then wait for the hub's wake-up (or the server's shutdown)."""
    stop = asyncio.ensure_future(srv.stopping.wait())
    try:
        async with srv.hub.subscribe(run_id) as waker:
            last = after
            while True:
                waker.clear()
                try:
                    batch = await srv.hub.read(run_id, last, _BATCH)
                except RunNotFound:
                    return
                for event in batch:
                    yield _frame(run_id, event)
                    last = event.seq
                    if event.type in _ENDS:
                        return
                if len(batch) == _BATCH:
                    continue
                if batch and batch[-1].type == "run.failed":
                    return  # failed and not resumed (a resume would have written after it)
                woke = asyncio.ensure_future(waker.wait())
                waiters: set[asyncio.Future[Any]] = {woke, stop}
                done, _ = await asyncio.wait(
                    waiters, timeout=KEEPALIVE_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                woke.cancel()
                if stop in done:
                    return
                if not done:
                    yield ": keepalive\n\n"
    finally:
        stop.cancel()


async def stream_events(request: Request) -> StreamingResponse:
    """The run's events as SSE: backlog after ``?after=`` / ``Last-Event-ID``, then live."""
    srv = server(request)
    run_id = request.path_params["runId"]
    last_id = request.headers.get("last-event-id")
    if last_id is not None and last_id.strip():
        after = _seq(last_id.strip(), "Last-Event-ID")
    else:
        after = _seq(request.query_params.get("after", "0"), "after")
    if await srv.store.get_run(run_id) is None:
        raise not_found("run")
    return StreamingResponse(
        _stream(srv, run_id, after),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


routes = [Route("/runs/{runId}/events", stream_events, methods=["GET"])]
