"""What every route needs: the server's client and protocol store, from the app's state."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio
from starlette.requests import Request

from tidebase_core._async.client import AsyncTidebase

from .hub import EventHub
from .store import ProtocolStore

__all__ = ["Server", "server"]


@dataclass
class Server:
    tide: AsyncTidebase
    store: ProtocolStore
    api_key: str | None
    hub: EventHub
    stopping: anyio.Event = field(default_factory=anyio.Event)
    """Set when the server shuts down: open event streams end so shutdown does not wait."""


def server(request: Request) -> Server:
    found: Server = request.app.state.server
    return found
