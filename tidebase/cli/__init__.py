"""The ``tidebase`` command line (typer + rich): ``db status|start|stop|url|migrate``,
``migrate``, ``worker``, ``runs list|show|watch|cancel|recover|retry-step|complete-step``,
``gates list|approve|reject``, ``usage summary``, ``queues list|configure``,
``schedules list|set|delete``, ``serve`` and ``mcp`` (see docs/cli.md).

Exit codes: 0 success, 1 failure (the message says what and how to fix it), 2 usage error.
"""

from __future__ import annotations

from . import serve as _serve  # noqa: F401 - registers `tidebase serve` on the app
from .app import app, main

__all__ = ["app", "main"]
