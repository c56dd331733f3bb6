"""``tidebase schedules list|set|delete``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import (
    JsonOption,
    add_columns,
    client,
    fail,
    out,
    parse_json_option,
    preview,
    print_json,
    print_table,
    when,
)

__all__ = ["app"]

app = typer.Typer(
    help="Cron schedules (5 fields, UTC) that enqueue a workflow.", no_args_is_help=True
)


@app.command("list")
def list_schedules(as_json: Annotated[bool, JsonOption] = False) -> None:
    """Every schedule with its next fire time."""
    with client() as tide:
        schedules = tide.schedules.list()
    if as_json:
        print_json(schedules)
        return
    if not schedules:
        out.print(
            "no schedules; add one with tidebase schedules set NAME --cron '0 3 * * *' "
            "--workflow WORKFLOW"
        )
        return
    table = Table(box=None, header_style="bold")
    add_columns(
        table,
        ("schedule", "cron", "workflow", "queue", "enabled", "next fire (UTC)", "last fired"),
        ids=("schedule", "workflow"),
    )
    table.add_column("input")
    for s in schedules:
        table.add_row(
            s.name,
            s.cron,
            s.workflow_name,
            s.queue,
            "yes" if s.enabled else "no",
            when(s.next_fire_at),
            when(s.last_fired_at),
            preview(s.input, 40),
        )
    print_table(table)


@app.command("set")
def set_schedule(
    name: Annotated[str, typer.Argument(help="The schedule's name.", show_default=False)],
    cron: Annotated[
        str, typer.Option("--cron", help="5 fields in UTC, e.g. '0 3 * * *'.", show_default=False)
    ],
    workflow: Annotated[
        str,
        typer.Option(
            "--workflow", "-w", help="The workflow each fire enqueues.", show_default=False
        ),
    ],
    input: Annotated[
        str | None, typer.Option("--input", help="The runs' input as JSON.", show_default=False)
    ] = None,
    queue: Annotated[str, typer.Option("--queue", "-q")] = "default",
    max_attempts: Annotated[int | None, typer.Option("--max-attempts", min=1)] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Create it switched off.")] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Create or replace a schedule (5-field cron, UTC).

    Each fire enqueues the workflow once, however many workers tick (a worker must run for
    schedules to fire).
    """
    value = parse_json_option(input, "--input")
    with client() as tide:
        s = tide.schedules.set(
            name,
            cron=cron,
            workflow_name=workflow,
            input=value,
            queue=queue,
            max_attempts=max_attempts,
            enabled=not disabled,
        )
    if as_json:
        print_json(s)
        return
    out.print(
        f"schedule {s.name!r}: {s.cron} → {s.workflow_name} on queue {s.queue!r}; "
        + (f"next fire {when(s.next_fire_at)} UTC" if s.enabled else "disabled")
    )


@app.command()
def delete(
    name: Annotated[str, typer.Argument(help="The schedule's name.", show_default=False)],
) -> None:
    """Delete a schedule (the runs it enqueued stay)."""
    with client() as tide:
        deleted = tide.schedules.delete(name)
    if not deleted:
        fail(f"no schedule {name!r}; `tidebase schedules list` shows the schedules there are")
    out.print(f"deleted schedule {name!r}")
