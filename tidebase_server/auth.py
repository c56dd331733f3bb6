"""Auth per DESIGN §8: with ``TIDEBASE_API_KEY`` set, every route but ``/health`` needs
``Authorization: Bearer <key>`` (compared in constant time); the event stream also takes
``?token=<key>`` because a browser's EventSource cannot set headers. Without a key the API is
open (trusted local setups), but no reader is *authenticated*: resolve tokens stay hidden.

Fail closed: an empty key counts as a key that nothing matches, never as "no key".
"""

from __future__ import annotations

import hmac
import re
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import ProtocolError

__all__ = ["AuthMiddleware", "is_authenticated"]

OPEN_PATHS = frozenset({"/health"})
_EVENT_STREAM = re.compile(r"^/runs/[^/]+/events$")


def _matches(candidate: str | None, key: str) -> bool:
    if not candidate or not key:
        return False
    return hmac.compare_digest(candidate.encode(), key.encode())


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1")
            return text[len("Bearer ") :] if text.startswith("Bearer ") else None
    return None


def _query_token(scope: Scope) -> str | None:
    query = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(query).get("token")
    return values[0] if values else None


def is_authenticated(scope: Scope) -> bool:
    """Whether this request presented the API key (set by ``AuthMiddleware``)."""
    state = scope.get("state") or {}
    return bool(state.get("authenticated", False))


class AuthMiddleware:
    def __init__(self, app: ASGIApp, *, api_key: str | None) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        state = scope.setdefault("state", {})
        state["authenticated"] = False
        if self.api_key is not None:
            candidate = _bearer(scope)
            if candidate is None and _EVENT_STREAM.match(path):
                candidate = _query_token(scope)
            ok = _matches(candidate, self.api_key)
            state["authenticated"] = ok
            if not ok and path not in OPEN_PATHS:
                response = ProtocolError(401, "unauthorized", code="unauthorized").response()
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
