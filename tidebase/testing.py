"""pytest fixtures for testing durable workflows against a real, throwaway PostgreSQL.

Installed with Tidebase and registered as a pytest plugin, so in any test::

    def test_resume(tide):
        assert tide.run("wf", wf, run_id="r1") == tide.run("wf", wf, run_id="r1")

- ``tidebase_database_url`` (session): a throwaway database on the embedded server, dropped at
  the end of the session; or the database ``TIDEBASE_TEST_DATABASE_URL`` points at. A session
  killed before its teardown leaves its database behind: the next session drops it, once the
  process it recorded (host, boot, PID namespace, PID and start time) is gone.
- ``tidebase_schema``: a fresh schema per test, dropped afterwards (tests stay isolated without
  creating a database each).
- ``tide`` / ``atide``: a ``Tidebase`` / ``AsyncTidebase`` on that database and schema. ``tide``
  also points decorated workflows (``@tidebase.workflow``) at it for the test's duration.
  ``atide`` needs pytest-asyncio.
- ``tidebase_env``: environment variables that point a subprocess at the same database and
  schema (for crash tests that kill a real worker process).

Outside tests the embedded server lives in the user's data directory, shared by all their runs.
A test session never touches it: unless ``TIDEBASE_HOME`` (or ``TIDEBASE_TEST_DATABASE_URL``)
is set, the plugin sets ``TIDEBASE_HOME`` to ``<rootdir>/.tidebase`` for the whole session, its
in-process clients and the processes it starts alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tidebase_core import defaults, embedded
from tidebase_core._async.client import AsyncTidebase
from tidebase_core._sync.client import Tidebase
from tidebase_core.owner import process_is_gone, this_process

__all__ = ["atide", "tide", "tidebase_database_url", "tidebase_env", "tidebase_schema"]


def pytest_configure(config: pytest.Config) -> None:
    if not os.environ.get("TIDEBASE_HOME") and not os.environ.get("TIDEBASE_TEST_DATABASE_URL"):
        os.environ["TIDEBASE_HOME"] = str(config.rootpath / ".tidebase")


@pytest.fixture(scope="session")
def tidebase_database_url() -> Iterator[str]:
    url = os.environ.get("TIDEBASE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    home = _test_home()
    server = embedded.embedded_server_uri(home)
    with psycopg.connect(server, autocommit=True) as conn:
        drop_abandoned_databases(conn)
        name = create_session_database(conn)
    try:
        yield embedded.embedded_server_uri(home, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            _drop(conn, name)


def create_session_database(conn: psycopg.Connection[Any]) -> str:
    """A database for this test session, its owner (this process) in its comment."""
    name = f"tidebase_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    host, pid, started = this_process()
    owner = json.dumps({"host": host, "pid": pid, "started": started})
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.execute(
        sql.SQL("COMMENT ON DATABASE {} IS {}").format(sql.Identifier(name), sql.Literal(owner))
    )
    return name


def drop_abandoned_databases(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop the databases of earlier sessions whose process is gone (killed before their
    teardown ran); returns their names. A database whose owner cannot be told (no comment, or
    another host) is left alone."""
    rows = conn.execute(
        "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE datname LIKE 'tidebase\\_test\\_%'"
    ).fetchall()
    dropped = []
    for name, comment in rows:
        try:
            owner = json.loads(comment)
            gone = process_is_gone(owner["host"], owner["pid"], owner["started"])
        except (TypeError, ValueError, KeyError):
            continue
        if gone:
            with contextlib.suppress(psycopg.Error):  # another session dropped it first
                _drop(conn, name)
                dropped.append(name)
    return dropped


def _drop(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _test_home() -> Path:
    """The embedded server of the test session: TIDEBASE_HOME, else ``./.tidebase`` (never the
    user's own data directory, which is the default home outside tests)."""
    return Path(os.environ.get("TIDEBASE_HOME") or ".tidebase").absolute()


@pytest.fixture
def tidebase_schema(tidebase_database_url: str) -> Iterator[str]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(tidebase_database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def tidebase_env(tidebase_database_url: str, tidebase_schema: str) -> dict[str, str]:
    """``os.environ`` plus the variables that point a child process at the test database."""
    env = dict(os.environ)
    env["TIDEBASE_DATABASE_URL"] = tidebase_database_url
    env["TIDEBASE_SCHEMA"] = tidebase_schema
    if not os.environ.get("TIDEBASE_TEST_DATABASE_URL"):
        # A child that drops the URL to use the embedded default gets the session's server.
        env["TIDEBASE_HOME"] = str(_test_home())
    return env


@pytest.fixture
def tide(tidebase_database_url: str, tidebase_schema: str) -> Iterator[Tidebase]:
    client = Tidebase(tidebase_database_url, schema=tidebase_schema)
    previous = dict(defaults._options)
    defaults.configure(tidebase_database_url, schema=tidebase_schema)
    try:
        yield client.open()
    finally:
        client.close()
        defaults.configure(**previous)


try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - exercised only without pytest-asyncio

    @pytest.fixture
    def atide() -> None:
        pytest.fail("the atide fixture needs pytest-asyncio: pip install pytest-asyncio")

else:

    @pytest_asyncio.fixture
    async def atide(  # type: ignore[misc]
        tidebase_database_url: str, tidebase_schema: str
    ) -> AsyncIterator[AsyncTidebase]:
        client = AsyncTidebase(tidebase_database_url, schema=tidebase_schema)
        previous = dict(defaults._options)
        defaults.configure(tidebase_database_url, schema=tidebase_schema)
        try:
            yield await client.open()
        finally:
            await client.close()
            defaults.configure(**previous)
