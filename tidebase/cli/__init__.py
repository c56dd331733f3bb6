"""The ``tidebase`` command line (typer + rich). This first cut manages the database:
``tidebase db status|start|stop|url|migrate`` and ``tidebase migrate``.

Exit codes: 0 success, 1 failure (the message says what and how to fix it), 2 usage error.
"""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
