"""What every ``tidebase`` command shares: the consoles, the client, JSON and error output.

Exit codes: 0 success, 1 failure (the message says what and how to fix it), 2 usage error.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shlex
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tidebase_core._sync.client import Tidebase
from tidebase_core.errors import (
    RunCancelled,
    RunLocked,
    RunNotFound,
    StepNotFound,
    TidebaseError,
)
from tidebase_core.settings import redact_dsn

__all__ = [
    "JsonOption",
    "add_columns",
    "as_jsonable",
    "cli_message",
    "client",
    "commands",
    "default_actor",
    "err",
    "fail",
    "out",
    "parse_json_option",
    "parse_since",
    "preview",
    "print_json",
    "print_table",
    "q",
    "when",
]

# markup off: run ids, step names and error messages are printed as they are (a "[x]" in one is
# text, not a style); styled lines pass markup=True with their values escaped.
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

JsonOption = typer.Option("--json", help="Print JSON (for scripts) instead of a table.")


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` (any password in it redacted) on stderr and exit."""
    err.print(f"[bold red]error:[/] {escape(redact_dsn(message))}", markup=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def client() -> Iterator[Tidebase]:
    """A connected ``Tidebase`` on the configured database (TIDEBASE_DATABASE_URL, else the
    embedded server; TIDEBASE_SCHEMA). Tidebase's own errors become ``error: …`` and exit 1;
    a value the API refuses (ValueError/TypeError) is a usage error, exit 2."""
    try:
        tide = Tidebase()
    except TidebaseError as exc:
        fail(str(exc))
    try:
        if out.is_terminal:
            with err.status(f"connecting to {tide.settings.safe_url} …", spinner="dots"):
                tide.open()
        else:
            tide.open()
        yield tide
    except TidebaseError as exc:
        fail(cli_message(exc))
    except (ValueError, TypeError) as exc:
        fail(str(exc), code=2)
    finally:
        tide.close()


def cli_message(exc: TidebaseError) -> str:
    """The error as a person at a shell reads it: the fix is a ``tidebase`` command, not a
    Python call."""
    if isinstance(exc, RunNotFound):
        return (
            f"no run {exc.run_id!r} in this database; `tidebase runs list` shows the runs there "
            "are (check TIDEBASE_DATABASE_URL and TIDEBASE_SCHEMA if it should be there)"
        )
    if isinstance(exc, StepNotFound):
        return (
            f"run {exc.run_id!r} has no step {exc.step!r}; `tidebase runs show "
            f"{q(exc.run_id)}` lists its steps"
        )
    if isinstance(exc, RunLocked):
        holder = f"pid {exc.pid} on {exc.host}" if exc.host else "another worker"
        return (
            f"run {exc.run_id!r} is being executed by {holder} right now; wait for it "
            f"(`tidebase runs watch {q(exc.run_id)}`) or stop it (`tidebase runs cancel "
            f"{q(exc.run_id)}`)"
        )
    if isinstance(exc, RunCancelled):
        return (
            f"{exc}; a cancelled run cannot be acted on (`tidebase runs show {q(exc.run_id)}` "
            "shows where it stopped)"
        )
    return str(exc)


def default_actor(via: str = "cli") -> str:
    """Who acts from this shell: the login name, marked with where it acted from."""
    try:
        return f"{getpass.getuser()} ({via})"
    except Exception:  # no login name (some containers)
        return f"tidebase-{via}"


def q(value: str) -> str:
    """``value`` quoted for a shell command line a person copies."""
    return shlex.quote(value)


def as_jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [as_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: as_jsonable(v) for k, v in value.items()}
    return value


def print_json(value: Any) -> None:
    """JSON on stdout: models dumped as their JSON form (datetimes ISO, Decimals as strings)."""
    typer.echo(json.dumps(as_jsonable(value), indent=2, ensure_ascii=False, default=str))


def print_table(table: Table) -> None:
    """A table on stdout; piped output gets a page at least 200 columns wide (wider with a
    larger COLUMNS) instead of rich's 80, so ids and commands are never cut."""
    if out.is_terminal:
        out.print(table)
        return
    columns = os.environ.get("COLUMNS", "")
    width = max(200, int(columns) if columns.isdigit() else 0)
    Console(highlight=False, soft_wrap=True, markup=False, width=width).print(table)


def add_columns(table: Table, names: Sequence[str], *, ids: Sequence[str] = ()) -> None:
    """Columns that survive a narrow terminal: every column wraps rather than vanishing, and
    ``ids`` (run ids, step and gate names) keep some width and fold onto further lines rather
    than being cut."""
    for name in names:
        table.add_column(name, overflow="fold", min_width=10 if name in ids else None)


def preview(value: Any, limit: int = 60) -> str:
    """A one-line preview of a JSON value."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_json_option(text: str | None, option: str) -> Any:
    """The JSON value given to ``option``; a usage error (exit 2) naming the option if invalid."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise typer.BadParameter(
            f"{text!r} is not JSON ({exc.msg}); quote it for the shell, e.g. "
            f"{option} '{{\"ok\": true}}' or {option} '\"a string\"'",
            param_hint=option,
        ) from None


_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str | None) -> datetime | None:
    """``24h``, ``7d``, ``30m`` (ago), or an ISO date/datetime (UTC when it has no offset)."""
    if text is None:
        return None
    text = text.strip()
    if text[:-1].isdigit() and text[-1:] in _UNITS:
        return datetime.now(UTC) - timedelta(**{_UNITS[text[-1]]: int(text[:-1])})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is neither a duration (30m, 24h, 7d) nor an ISO date (2026-01-31 or "
            "2026-01-31T08:00:00+00:00)",
            param_hint="--since",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def when(value: datetime | None) -> str:
    """A timestamp for a table: UTC, to the second."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def commands(lines: Sequence[str]) -> None:
    for line in lines:
        out.print(f"  [bold]$[/] {escape(line)}", markup=True)
