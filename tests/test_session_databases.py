"""The pytest plugin's session databases (``tidebase.testing``): a session killed before its
teardown leaves its database behind, and the next session drops it, but never a database whose
owner may still be alive."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from psycopg import sql

from tidebase.testing import create_session_database, drop_abandoned_databases

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("TIDEBASE_TEST_DATABASE_URL")),
    reason="the plugin creates session databases only on the embedded server",
)

KILLED_SESSION = """
import os, signal, psycopg
from tidebase.testing import create_session_database
with psycopg.connect(os.environ["URL"], autocommit=True) as conn:
    print(create_session_database(conn), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # no teardown
"""


def _exists(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None and row[0] == 1


def test_a_killed_sessions_database_is_dropped_by_the_next(tidebase_database_url: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", KILLED_SESSION],
        env={**os.environ, "URL": tidebase_database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == -9, child.stderr
    abandoned = child.stdout.strip()
    with psycopg.connect(tidebase_database_url, autocommit=True) as conn:
        live = create_session_database(conn)  # this process: alive
        unknown = "tidebase_test_1_0000beef"  # no owner recorded (an older plugin's)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(unknown)))
        try:
            assert _exists(conn, abandoned)
            dropped = drop_abandoned_databases(conn)
            assert not _exists(conn, abandoned)  # by us, or by a session starting meanwhile
            assert live not in dropped and _exists(conn, live)
            assert unknown not in dropped and _exists(conn, unknown)
        finally:
            for name in (live, unknown):
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
