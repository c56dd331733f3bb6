"""Routes matched on the raw (still percent-encoded) path.

The SDKs quote names in paths (``/runs/my%2Fflow``): matched on the decoded path, a ``/`` inside
a workflow name or run id would split the segment and miss the route. Matching the raw path and
unquoting each parameter keeps any character usable in an id.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from starlette.routing import Match, Route
from starlette.types import Scope

__all__ = ["RawRoute"]


class RawRoute(Route):
    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw = scope.get("raw_path")
        if scope["type"] != "http" or not raw:
            return super().matches(scope)
        path = raw.decode("latin-1").split("?", 1)[0]
        match, child = super().matches({**scope, "path": path, "root_path": ""})
        if match is not Match.NONE:
            params: dict[str, Any] = child.get("path_params", {})
            child["path_params"] = {
                k: unquote(v) if isinstance(v, str) else v for k, v in params.items()
            }
        return match, child
