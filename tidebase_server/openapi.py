"""``GET /openapi.json``: an OpenAPI 3.1 description of every route this server answers."""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

__all__ = ["build_spec", "routes"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_STATUS_TEXT = {
    200: "OK",
    400: "Invalid request (code invalid_request)",
    401: "Missing or wrong API key (code unauthorized)",
    404: "Not found (code not_found)",
    409: "Conflict (see code)",
    422: "Not supported by this server yet (code unsupported)",
    501: "Not part of this server (code not_implemented)",
}
_PARAM = re.compile(r"{(\w+)(?::\w+)?}")


def _responses(route: Route, method: str) -> dict[str, Any]:
    codes: list[int] = getattr(route.endpoint, "statuses", None) or [200, 400, 404]
    out: dict[str, Any] = {}
    for code in [*codes, *([] if route.path == "/health" else [401])]:
        entry: dict[str, Any] = {"description": _STATUS_TEXT.get(code, str(code))}
        if code != 200:
            entry["content"] = {"application/json": {"schema": _ERROR}}
        out[str(code)] = entry
    return out


def build_spec(all_routes: list[BaseRoute]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in all_routes:
        if not isinstance(route, Route) or route.methods is None:
            continue
        path = _PARAM.sub(r"{\1}", route.path)
        doc = (route.endpoint.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _PARAM.findall(route.path)
        ]
        for method in sorted(route.methods - {"HEAD"}):
            op: dict[str, Any] = {
                "summary": doc,
                "operationId": f"{method.lower()}_{route.endpoint.__name__}_{len(paths)}",
                "responses": _responses(route, method),
            }
            if params:
                op["parameters"] = params
            model = getattr(route.endpoint, "body_model", None)
            if model is not None:
                op["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": model.model_json_schema()}},
                }
            if route.path == "/health":
                op["security"] = []
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tidebase",
            "version": "0.7.0",
            "description": "The Tidebase v0.7 HTTP protocol, served by `tidebase serve`.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
                }
            },
        },
        "security": [{"bearer": []}],
    }


async def openapi(request: Request) -> JSONResponse:
    """This description."""
    return JSONResponse(build_spec(request.app.routes))


routes = [Route("/openapi.json", openapi, methods=["GET"])]
