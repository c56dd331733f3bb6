"""Versioned schema migrations, shipped in ``migrations/NNNN_name.sql``.

They are applied in order, inside one transaction, under an advisory lock (so processes that
start together do not race), and recorded in ``<schema>.migrations``. Migrations run through
a short-lived synchronous connection for the sync and the async client alike.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import psycopg
from psycopg import sql

from .. import embedded
from ..errors import DatabaseUnavailable, MigrationsPending
from ..settings import Settings, redact_dsn

__all__ = [
    "Migration",
    "all_migrations",
    "connect_and_migrate",
    "migrate",
    "pending_migrations",
]

_NAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def all_migrations() -> tuple[Migration, ...]:
    found = []
    for entry in resources.files("tidebase_core.store").joinpath("migrations").iterdir():
        match = _NAME_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    return tuple(found)


def _lock_key(schema: str) -> int:
    digest = hashlib.blake2b(f"tidebase.migrate:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _applied(conn: psycopg.Connection[tuple[object, ...]], schema: str) -> set[int]:
    exists = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL",
        (f"{sql.Identifier(schema).as_string(None)}.migrations",),
    ).fetchone()
    if not exists or not exists[0]:
        return set()
    rows = conn.execute(
        sql.SQL("SELECT version FROM {}.migrations").format(sql.Identifier(schema))
    ).fetchall()
    return {int(r[0]) for r in rows}  # type: ignore[call-overload]


def pending_migrations(
    conn: psycopg.Connection[tuple[object, ...]], schema: str
) -> list[Migration]:
    done = _applied(conn, schema)
    return [m for m in all_migrations() if m.version not in done]


def migrate(
    conn: psycopg.Connection[tuple[object, ...]], schema: str, *, apply: bool = True
) -> list[Migration]:
    """Apply pending migrations (or, with ``apply=False``, fail fast if there are any)."""
    todo = pending_migrations(conn, schema)
    if not todo:
        return []
    if not apply:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in todo)
        raise MigrationsPending(
            f"the Tidebase schema {schema!r} needs migrations {names} and TIDEBASE_AUTO_MIGRATE=0 "
            "forbids applying them here. Apply them from a deploy step with `tidebase migrate` "
            "(or `python -m tidebase migrate`, or Tidebase(...).migrate()), with the same "
            "TIDEBASE_DATABASE_URL and TIDEBASE_SCHEMA, or unset TIDEBASE_AUTO_MIGRATE"
        )
    ident = sql.Identifier(schema)
    applied: list[Migration] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(ident))
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            ).format(ident)
        )
        # Someone may have migrated while we waited for the lock.
        todo = pending_migrations(conn, schema)
        conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(ident))
        for m in todo:
            conn.execute(m.sql.encode())
            conn.execute(
                sql.SQL("INSERT INTO {}.migrations (version, name) VALUES (%s, %s)").format(ident),
                (m.version, m.name),
            )
            applied.append(m)
    return applied


def connect_and_migrate(settings: Settings, *, apply: bool) -> tuple[str, list[Migration]]:
    """The database URL (starting the embedded server if none is set), reachable and migrated."""
    url = settings.database_url or embedded.embedded_url(settings.home)
    try:
        conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise DatabaseUnavailable(
            f"could not connect to Postgres at {settings.safe_url}: "
            f"{redact_dsn(str(exc).strip())}. "
            "Check TIDEBASE_DATABASE_URL (or database_url=), or unset it to use the embedded "
            "server"
        ) from exc
    with conn:
        return url, migrate(conn, settings.schema, apply=apply)
