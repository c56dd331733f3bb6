"""The v0.7 credential broker (agents, resources, grants, audit) is not part of this server's
contract (DESIGN §8): every broker route answers 501 with code ``not_implemented``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from .errors import ProtocolError
from .routing import RawRoute as Route

__all__ = ["routes"]

ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


async def not_implemented(request: Request) -> JSONResponse:
    raise ProtocolError(
        501,
        "the credential broker (agents, resources, grants, audit) is not part of tidebase serve",
        code="not_implemented",
    )


routes = [
    Route(path, not_implemented, methods=ALL_METHODS)
    for path in (
        "/agents",
        "/agents/{rest:path}",
        "/resources",
        "/resources/{rest:path}",
        "/audit",
        "/runs/{runId}/grants",
        "/runs/{runId}/grants/{rest:path}",
    )
]
