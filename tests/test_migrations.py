"""Schema migrations: versioned, recorded, applied once under a lock; opt-out fails fast."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tidebase import Tidebase
from tidebase.errors import MigrationsPending
from tidebase_core.store.migrate import all_migrations


@pytest.fixture
def fresh_schema(tidebase_database_url: str) -> Iterator[str]:
    schema = f"m_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(tidebase_database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def applied(url: str, schema: str) -> list[int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            sql.SQL("SELECT version FROM {}.migrations ORDER BY version").format(
                sql.Identifier(schema)
            )
        ).fetchall()
    return [r[0] for r in rows]


def test_auto_migrate_off_fails_fast_then_migrate_applies(
    tidebase_database_url: str, fresh_schema: str
) -> None:
    tide = Tidebase(tidebase_database_url, schema=fresh_schema, auto_migrate=False)
    with pytest.raises(
        MigrationsPending, match=r"needs migrations 0001_.*python -m tidebase migrate"
    ):
        tide.run("wf", lambda run, input: 1, run_id="r")
    assert [m.version for m in tide.migrate()] == [m.version for m in all_migrations()]
    assert tide.migrate() == []  # nothing left to apply
    assert tide.run("wf", lambda run, input: 1, run_id="r") == 1
    tide.close()


def test_auto_migrate_env_var(
    tidebase_database_url: str, fresh_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEBASE_AUTO_MIGRATE", "0")
    with pytest.raises(MigrationsPending):
        Tidebase(tidebase_database_url, schema=fresh_schema).open()


def test_concurrent_first_opens_apply_each_migration_once(
    tidebase_database_url: str, fresh_schema: str
) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_client() -> None:
        try:
            barrier.wait()
            client = Tidebase(tidebase_database_url, schema=fresh_schema)
            client.open()
            client.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert applied(tidebase_database_url, fresh_schema) == [m.version for m in all_migrations()]
