"""``tidebase serve`` for the harness that runs upstream's server tests (see ``run.py``).

The shipped app, plus one route that exists only here: ``POST /__harness/reconcile-tick`` runs
exactly one reconciler tick (upstream's tests call ``reconcileTick()`` in-process; the shipped
server only ticks on its own timer, which the harness turns off as upstream's ``createApp``
has none). It answers upstream's ``TickReport`` shape, or ``null`` when another tick holds
the lock. The process stops when its stdin closes, so a test worker that dies takes its
servers with it.

Usage: ``python harness_server.py PORT`` with the server's environment
(``TIDEBASE_DATABASE_URL``, ``TIDEBASE_LEASE_MS``, ``TIDEBASE_API_KEY`` …).
"""

from __future__ import annotations

import sys
import threading

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tidebase_core._async.reconciler import AsyncReconciler
from tidebase_server import channels, gates
from tidebase_server.app import create_app
from tidebase_server.deps import Server, server
from tidebase_server.serve import ProtocolServer

TICK_PATH = "/__harness/reconcile-tick"


async def reconcile_tick(request: Request) -> JSONResponse:
    srv: Server = server(request)
    report = await AsyncReconciler(srv.tide).tick()
    if report is None:
        return JSONResponse(None)
    # The server's own part of a tick (as tidebase_server.app._sweep does on the timer).
    await gates.expire_gates(srv)
    await channels.dispatch_backlog(srv)
    return JSONResponse(
        {
            "requeued": len(report.requeued),
            "failed": len(report.failed),
            "recovered": len(report.webhooks),
            "cancelledByDeadline": len(report.cancelled),
            "scheduled": len(report.fired),
            "invoked": len(report.dispatched),
            "grantsExpired": 0,
        }
    )


def main() -> None:
    port = int(sys.argv[1])
    app = create_app(reconcile_seconds=None)
    # First, so no catch-all route of the app shadows it; auth still applies.
    app.router.routes.insert(0, Route(TICK_PATH, reconcile_tick, methods=["POST"]))
    proc = ProtocolServer(app, host="127.0.0.1", port=port, log_level="warning")

    def watch_stdin() -> None:
        sys.stdin.read()  # returns at EOF: the test worker that started us is gone
        proc.should_exit = True

    threading.Thread(target=watch_stdin, daemon=True).start()
    proc.run()


if __name__ == "__main__":
    main()
