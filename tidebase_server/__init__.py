"""``tidebase serve``: the Tidebase v0.7 HTTP protocol on this project's store (extra
``server``: Starlette + uvicorn). Uses tidebase_core like a plugin."""

from __future__ import annotations

from .app import create_app
from .serve import serve

__all__ = ["create_app", "serve"]
