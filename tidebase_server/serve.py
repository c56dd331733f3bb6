"""Run the protocol server with uvicorn: ``tidebase serve`` and the tests' fixture use this.

Graceful shutdown (SIGINT/SIGTERM): stop accepting, end the open event streams at once (their
clients reconnect elsewhere with ``Last-Event-ID``), let in-flight requests finish, then close
the database pool.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette

from .deps import Server

__all__ = ["ProtocolServer", "configure_logging", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7373


class ProtocolServer(uvicorn.Server):
    """uvicorn's server, which ends the event streams first when it shuts down."""

    def __init__(self, app: Starlette, **options: Any) -> None:
        options.setdefault("access_log", False)  # ours is structured: logger tidebase.server
        options.setdefault("timeout_graceful_shutdown", 10)
        options.setdefault("lifespan", "on")
        super().__init__(uvicorn.Config(app, **options))
        self.protocol: Server = app.state.server

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.protocol.stopping.set()
        await super().shutdown(sockets)


def configure_logging(level: int = logging.INFO) -> None:
    """Log ``tidebase.server`` records (the access log) to stderr, once."""
    logger = logging.getLogger("tidebase.server")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, api_key: Any = None) -> None:
    """Serve on ``host:port`` until SIGINT/SIGTERM, on the database of the environment."""
    from .app import create_app

    configure_logging()
    app = create_app() if api_key is None else create_app(api_key=api_key)
    server = ProtocolServer(app, host=host, port=port, log_level="info")
    # uvicorn re-raises the signal that stopped it once shutdown is done, under the handlers
    # that were installed before it ran: with these, a graceful stop exits with status 0.
    previous = {sig: signal.signal(sig, _stopped) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _stopped(signum: int, frame: FrameType | None) -> None:
    """The re-raised stop signal, after a graceful shutdown: nothing left to do."""
