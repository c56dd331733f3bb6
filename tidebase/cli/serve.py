"""``tidebase serve``: the Tidebase v0.7 HTTP protocol (needs the ``server`` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from .app import _fail, app

__all__ = ["serve"]


@app.command()
def serve(
    host: Annotated[
        str, typer.Option("--host", help="Interface to listen on (0.0.0.0 for every one).")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option("--port", envvar="PORT", help="TCP port (default: PORT, else 7373).", min=0),
    ] = 7373,
) -> None:
    """Serve the Tidebase HTTP protocol (runs, gates, state, events over SSE) on this store.

    The database is TIDEBASE_DATABASE_URL, else the embedded PostgreSQL. With TIDEBASE_API_KEY
    set, every route but /health requires `Authorization: Bearer <key>`. Stop with Ctrl-C or
    SIGTERM (graceful: in-flight requests finish, event streams end).
    """
    try:
        from tidebase_server import serve as run_server
    except ImportError as exc:
        _fail(
            f"`tidebase serve` needs the server extra ({exc.name} is missing): "
            "pip install 'tidebase[server]'"
        )
    run_server(host=host, port=port)
