"""The ``tidebase`` app: ``db …``, ``migrate`` and ``worker`` here; ``runs``, ``gates``, ``usage``,
``queues``, ``schedules`` and ``mcp`` from their own modules, registered at the end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from tidebase_core import embedded
from tidebase_core.errors import TidebaseError
from tidebase_core.settings import Settings, redact_dsn
from tidebase_core.store.migrate import connect_and_migrate, pending_migrations

__all__ = ["app", "main"]

app = typer.Typer(
    name="tidebase",
    help="Tidebase: durable execution for AI agents on Postgres.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
db = typer.Typer(
    help="The database: the embedded PostgreSQL (status, start, stop, url) and migrations.",
    no_args_is_help=True,
)
app.add_typer(db, name="db")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        help="The embedded server's home (default: TIDEBASE_HOME, else the user's data "
        "directory, e.g. ~/.local/share/tidebase).",
        show_default=False,
    ),
]
SchemaOption = Annotated[
    str | None,
    typer.Option(
        "--schema",
        help="Tidebase's schema (default: TIDEBASE_SCHEMA or 'tidebase').",
        show_default=False,
    ),
]


def main() -> None:
    """Entry point of the ``tidebase`` console script and ``python -m tidebase``."""
    app()


def _settings(home: Path | None, schema: str | None = None) -> Settings:
    try:
        return Settings.resolve(home=home, schema=schema)
    except TidebaseError as exc:
        _fail(str(exc))


def _fail(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {redact_dsn(message)}", markup=True)
    raise typer.Exit(1)


def _only_embedded(settings: Settings, action: str) -> None:
    if settings.database_url is not None:
        _fail(
            f"TIDEBASE_DATABASE_URL is set ({settings.safe_url}): `tidebase db {action}` manages "
            "only the embedded PostgreSQL, used when no URL is set. Manage your own Postgres "
            "with its own tools, or unset TIDEBASE_DATABASE_URL"
        )


# --- status ----------------------------------------------------------------------------------


def _pending(url: str, schema: str) -> int | None:
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            return len(pending_migrations(conn, schema))
    except psycopg.Error:
        return None


def _status(settings: Settings) -> dict[str, Any]:
    if settings.database_url is not None:
        info: dict[str, Any] = {
            "database": "external",
            "url": settings.safe_url,
            "schema": settings.schema,
            "running": False,
            "version": None,
            "pending_migrations": None,
            "error": None,
        }
        try:
            with psycopg.connect(settings.database_url, autocommit=True, connect_timeout=5) as c:
                row = c.execute("SHOW server_version").fetchone()
                info["version"] = str(row[0]) if row else None
                info["running"] = True
                info["pending_migrations"] = len(pending_migrations(c, settings.schema))
        except psycopg.Error as exc:
            info["error"] = redact_dsn(str(exc).strip())
        return info
    st = embedded.server_status(settings.home)
    url = st.url if st.state == "ready" else None
    return {
        "database": "embedded",
        "running": st.running,
        "state": st.state,
        "home": str(st.home),
        "data_dir": str(st.data_dir),
        "socket_dir": str(st.socket_dir) if st.socket_dir else None,
        "url": url,
        "pid": st.pid,
        "version": st.version,
        "log": str(st.log),
        "schema": settings.schema,
        "pending_migrations": _pending(url, settings.schema) if url else None,
    }


@db.command()
def status(
    home: HomeOption = None,
    schema: SchemaOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Whether the database runs, where, its pid and version. Exit code 0 when it runs (or the
    configured TIDEBASE_DATABASE_URL answers), 1 when it does not."""
    settings = _settings(home, schema)
    info = _status(settings)
    if as_json:
        out.print_json(json.dumps(info))
    else:
        table = Table(show_header=False, box=None, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        for key, value in info.items():
            if value is not None:
                table.add_row(key.replace("_", " "), str(value))
        if info["database"] == "embedded" and not info["running"]:
            table.add_row("start it", "tidebase db start (any Tidebase client starts it too)")
        out.print(table)
    if not info["running"]:
        raise typer.Exit(1)


# --- start / stop / url ----------------------------------------------------------------------


@db.command()
def start(home: HomeOption = None) -> None:
    """Start the embedded PostgreSQL (a no-op when it runs). It stays up until `db stop`."""
    settings = _settings(home)
    _only_embedded(settings, "start")
    try:
        url = embedded.embedded_url(settings.home)
    except TidebaseError as exc:
        _fail(str(exc))
    st = embedded.server_status(settings.home)
    out.print(f"embedded PostgreSQL {st.version} running (pid {st.pid}) in {st.data_dir}")
    out.print(url)


@db.command()
def stop(
    home: HomeOption = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="smart: wait for clients to disconnect; fast: roll back their transactions "
            "(runs resume later); immediate: no clean shutdown (crash recovery on next start).",
        ),
    ] = "fast",
) -> None:
    """Stop the embedded PostgreSQL (works as root: it runs pg_ctl as the server's own user)."""
    if mode not in ("smart", "fast", "immediate"):
        err.print(f"error: --mode must be smart, fast or immediate, got {mode!r}")
        raise typer.Exit(2)
    settings = _settings(home)
    _only_embedded(settings, "stop")
    stop_mode: Literal["smart", "fast", "immediate"] = mode  # type: ignore[assignment]
    try:
        stopped = embedded.stop(settings.home, mode=stop_mode)
    except Exception as exc:
        _fail(f"could not stop the embedded PostgreSQL in {settings.home / 'pgdata'}: {exc}")
    data = embedded.server_status(settings.home).data_dir
    if stopped:
        out.print(f"stopped the embedded PostgreSQL in {data}")
    else:
        out.print(f"the embedded PostgreSQL in {data} was not running")


@db.command()
def url(
    home: HomeOption = None,
    show_password: Annotated[
        bool,
        typer.Option("--show-password", help="With TIDEBASE_DATABASE_URL: print it unredacted."),
    ] = False,
) -> None:
    """Print the connection URL of Tidebase's database (starting the embedded server if
    needed), e.g. psql "$(tidebase db url)"."""
    settings = _settings(home)
    if settings.database_url is not None:
        out.print(settings.database_url if show_password else settings.safe_url)
        return
    try:
        out.print(embedded.embedded_url(settings.home))
    except TidebaseError as exc:
        _fail(str(exc))


# --- migrations ------------------------------------------------------------------------------


def _migrate(home: Path | None, schema: str | None) -> None:
    settings = _settings(home, schema)
    try:
        _, applied = connect_and_migrate(settings, apply=True)
    except TidebaseError as exc:
        _fail(str(exc))
    except psycopg.Error as exc:
        _fail(f"migrating {settings.safe_url} failed: {exc}")
    where = f"schema {settings.schema!r} on {settings.safe_url}"
    if not applied:
        out.print(f"{where} is up to date")
    for m in applied:
        out.print(f"applied {m.version:04d}_{m.name} to {where}")


@db.command("migrate")
def db_migrate(home: HomeOption = None, schema: SchemaOption = None) -> None:
    """Apply pending schema migrations (under an advisory lock; safe to run concurrently)."""
    _migrate(home, schema)


@app.command("migrate")
def migrate_alias(home: HomeOption = None, schema: SchemaOption = None) -> None:
    """Apply pending schema migrations (the same as `tidebase db migrate`)."""
    _migrate(home, schema)


@app.command()
def worker(
    target: Annotated[str, typer.Argument(help="module:attribute of your client, e.g. jobs:tide")],
    queue: Annotated[
        list[str] | None,
        typer.Option("--queue", "-q", help="a queue to pull from (repeat for several)"),
    ] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", min=1)] = 1,
    poll: Annotated[float, typer.Option("--poll", help="seconds between empty polls")] = 0.5,
    log_level: Annotated[str, typer.Option("--log-level")] = "INFO",
) -> None:
    """Pull runs from queues and execute them with the workflows your module registers.

    SIGTERM or Ctrl-C drains: the runs in hand finish (or give their lease back), nothing new
    is claimed. The reconciler ticks here too: dead workers' runs are requeued, schedules fire.
    """
    from tidebase_core.worker import main as run_worker

    argv = [target, "--concurrency", str(concurrency), "--poll", str(poll)]
    argv += ["--log-level", log_level]
    for name in queue or ["default"]:
        argv += ["--queue", name]
    raise typer.Exit(run_worker(argv))


@app.callback()
def _root() -> None:
    """Tidebase: durable execution for AI agents on Postgres."""


# --- the operator commands, one module per area ----------------------------------------------

from . import gates as _gates  # noqa: E402
from . import queues as _queues  # noqa: E402
from . import runs as _runs  # noqa: E402
from . import schedules as _schedules  # noqa: E402
from . import usage as _usage  # noqa: E402
from .mcp import mcp_command as _mcp_command  # noqa: E402

app.add_typer(_runs.app, name="runs")
app.add_typer(_gates.app, name="gates")
app.add_typer(_usage.app, name="usage")
app.add_typer(_queues.app, name="queues")
app.add_typer(_schedules.app, name="schedules")
app.command("mcp")(_mcp_command)
