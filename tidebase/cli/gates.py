"""``tidebase gates list|approve|reject``."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from tidebase_core.errors import GateNotFound, RunNotFound

from .common import (
    JsonOption,
    add_columns,
    client,
    default_actor,
    fail,
    out,
    parse_json_option,
    preview,
    print_json,
    print_table,
    when,
)

__all__ = ["app"]

app = typer.Typer(help="Approval gates: list them, approve or reject one.", no_args_is_help=True)


class Which(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    ALL = "all"


@app.command("list")
def list_gates(
    status: Annotated[Which, typer.Option("--status", "-s")] = Which.PENDING,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run's gates.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 100,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Gates, oldest first (default: those waiting for a decision)."""
    with client() as tide:
        gates = tide.gates.list(
            status=None if status is Which.ALL else status.value, run_id=run_id, limit=limit
        )
    if as_json:
        # The resolve token stays out: it is the gate's bearer credential.
        print_json([g.model_dump(mode="json", exclude={"token"}) for g in gates])
        return
    if not gates:
        out.print("no gates" if status is Which.ALL else f"no {status.value} gates")
        return
    table = Table(box=None, header_style="bold")
    add_columns(
        table,
        ("run", "gate", "status", "prompt", "data", "opened", "actor"),
        ids=("run", "gate"),
    )
    for g in gates:
        style = {"pending": "bold yellow", "approved": "green", "rejected": "red"}[g.status]
        table.add_row(
            g.run_id,
            g.name,
            Text(g.status.value, style=style),
            preview(g.prompt, 50),
            preview(g.data, 40),
            when(g.created_at),
            g.actor or "",
        )
    print_table(table)


RunArg = Annotated[str, typer.Argument(help="The run's id.", show_default=False)]
GateArg = Annotated[
    str,
    typer.Argument(help="The gate's name (name#n for the n-th of that name).", show_default=False),
]
ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor", help="Who decides (recorded; default: your login).", show_default=False
    ),
]
PayloadOption = Annotated[
    str | None,
    typer.Option("--payload", help="JSON handed to the run with the decision.", show_default=False),
]


def _resolve(run_id: str, gate: str, decision: str, actor: str | None, payload: str | None) -> None:
    value = parse_json_option(payload, "--payload")
    with client() as tide:
        try:
            result = tide.gates.resolve(
                run_id, gate, decision, actor=actor or default_actor(), payload=value
            )
        except RunNotFound:
            fail(f"no run {run_id!r} in this database; `tidebase gates list` shows pending gates")
        except GateNotFound:
            names = [g.name for g in tide.gates.list(run_id=run_id, limit=1000)]
            fail(
                f"run {run_id!r} has no gate {gate!r}"
                + (f"; its gates: {', '.join(names)}" if names else " (it has opened none yet)")
            )
    out.print(f"gate {result.name!r} of run {run_id}: {result.decision.value} by {result.actor}")


@app.command()
def approve(
    run_id: RunArg,
    gate: GateArg,
    actor: ActorOption = None,
    payload: PayloadOption = None,
) -> None:
    """Approve a pending gate: the run waiting on it continues at once."""
    _resolve(run_id, gate, "approved", actor, payload)


@app.command()
def reject(
    run_id: RunArg,
    gate: GateArg,
    actor: ActorOption = None,
    payload: PayloadOption = None,
) -> None:
    """Reject a pending gate: the run gets the rejection (its code decides what follows)."""
    _resolve(run_id, gate, "rejected", actor, payload)
