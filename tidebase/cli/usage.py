"""``tidebase usage summary``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from .common import JsonOption, client, out, parse_since, print_json, print_table

__all__ = ["app"]

app = typer.Typer(help="The token and cost ledger.", no_args_is_help=True)


@app.command()
def summary(
    run_id: Annotated[
        str | None, typer.Argument(help="Only this run (default: every run).", show_default=False)
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only runs of this workflow.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only usage recorded since: 30m, 24h, 7d or an ISO date."),
    ] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Tokens and cost (USD), in total and by provider and model."""
    start = parse_since(since)
    with client() as tide:
        if run_id is not None:
            tide.runs.get(run_id)  # an unknown run is an error, not an empty summary
        result = tide.usage.summary(run_id, workflow=workflow, since=start)
    if as_json:
        print_json(result)
        return
    scope = " ".join(
        part
        for part in (
            f"run {run_id}" if run_id else "all runs",
            f"of workflow {workflow!r}" if workflow else "",
            f"since {start:%Y-%m-%d %H:%M} UTC" if start else "",
        )
        if part
    )
    if not result.calls:
        out.print(f"no usage recorded ({scope})")
        return
    table = Table(box=None, header_style="bold", title=f"usage: {scope}", title_justify="left")
    for col in ("provider", "model", "calls", "input", "output", "total", "cost USD"):
        table.add_column(
            col, justify="left" if col in ("provider", "model") else "right", overflow="fold"
        )
    for m in result.by_model:
        cost = f"{m.cost_usd:.6f}" + ("" if m.priced_calls == m.calls else " *")
        table.add_row(
            m.provider or "",
            m.model or "",
            str(m.calls),
            f"{m.input_tokens:,}",
            f"{m.output_tokens:,}",
            f"{m.total_tokens:,}",
            cost,
        )
    table.add_row(
        "total",
        "",
        str(result.calls),
        f"{result.input_tokens:,}",
        f"{result.output_tokens:,}",
        f"{result.total_tokens:,}",
        f"{result.cost_usd:.6f}",
        style="bold",
    )
    print_table(table)
    if any(m.priced_calls != m.calls for m in result.by_model):
        out.print("* some calls have no known price; the cost covers the priced ones")
