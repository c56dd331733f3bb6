"""One structured log record per request on the ``tidebase.server`` logger.

The record's message is readable (``GET /runs 200 3.1ms``) and its fields are attributes of
the record (``method``, ``path``, ``status``, ``duration_ms``, ``client``) for JSON formatters.
The query string is never logged: the event stream's ``?token=`` is a credential.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLogMiddleware"]

log = logging.getLogger("tidebase.server")


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            duration = (time.perf_counter() - start) * 1000
            client = scope.get("client")
            fields: dict[str, Any] = {
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "duration_ms": round(duration, 2),
                "client": f"{client[0]}:{client[1]}" if client else None,
            }
            log.info(
                "%s %s %d %.1fms",
                fields["method"],
                fields["path"],
                status,
                duration,
                extra=fields,
            )
