"""The protocol's error envelope: ``{"error": message, "code": ...}`` with the upstream status.

A handler raises ``ProtocolError``; request bodies are validated by pydantic models and a bad
one answers 400 ``{"error": "invalid request body", "code": "invalid_request", "issues": [...]}``
as upstream (zod issues: ``path`` and ``message``).
"""

from __future__ import annotations

import json
import logging
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from tidebase_core.errors import DatabaseUnavailable, RunNotFound, TidebaseError

__all__ = ["ProtocolError", "check_url", "handle_error", "invalid_field", "not_found", "parse_body"]

log = logging.getLogger("tidebase.server")

M = TypeVar("M", bound=BaseModel)


class ProtocolError(Exception):
    """An answer other than 200: status, message, optional upstream ``code`` and extra fields."""

    def __init__(self, status: int, error: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.code = code
        self.extra = extra

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.error}
        if self.code is not None:
            body["code"] = self.code
        body.update(self.extra)
        return JSONResponse(body, status_code=self.status)


def not_found(what: str) -> ProtocolError:
    return ProtocolError(404, f"{what} not found", code="not_found")


def invalid_field(field: str, message: str) -> ProtocolError:
    """400 ``invalid_request`` naming the field at fault and how to fix it."""
    return ProtocolError(
        400,
        "invalid request body",
        code="invalid_request",
        issues=[{"path": [field], "message": message}],
    )


def check_url(value: str | None, field: str) -> str | None:
    """An absolute http(s) URL (upstream's ``z.string().url()``), else 400 naming ``field``."""
    if value is None:
        return None
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise invalid_field(field, f"expected an absolute http(s) URL, got {value[:100]!r}")
    return value


async def parse_body(request: Request, model: type[M]) -> M:
    """The JSON body validated as ``model`` (an empty body is ``{}``)."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(
            400,
            "invalid request body",
            code="invalid_request",
            issues=[{"path": [], "message": f"not valid JSON: {exc}"}],
        ) from None
    if not isinstance(data, dict):
        raise ProtocolError(
            400,
            "invalid request body",
            code="invalid_request",
            issues=[{"path": [], "message": "expected a JSON object"}],
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = [
            {"path": list(e["loc"]), "message": e["msg"], "code": e["type"]} for e in exc.errors()
        ]
        raise ProtocolError(
            400, "invalid request body", code="invalid_request", issues=issues
        ) from None


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette exception handler: every failure leaves as a JSON envelope."""
    if isinstance(exc, ProtocolError):
        return exc.response()
    if isinstance(exc, HTTPException):  # no such route (404) or method (405)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return ProtocolError(exc.status_code, str(exc.detail).lower(), code=code).response()
    if isinstance(exc, RunNotFound):
        return not_found("run").response()
    if isinstance(exc, DatabaseUnavailable):
        log.error("database unavailable: %s", exc)
        return ProtocolError(503, "database unavailable", code="database_unavailable").response()
    if isinstance(exc, TidebaseError):
        return ProtocolError(400, str(exc), code="invalid_request").response()
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return ProtocolError(500, "internal server error").response()
