"""``tidebase usage summary``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from .common import JsonOption, client, out, parse_since, print_json, print_table

__all__ = ["app"]

app = typer.Typer(help="The token and cost ledger.", no_args_is_help=True)


_NUMBERS = ("calls", "input", "output", "total", "cost USD")


def _totals(m: Any) -> list[str]:
    cost = f"{m.cost_usd:.6f}" + ("" if m.priced_calls == m.calls else " *")
    return [
        str(m.calls),
        f"{m.input_tokens:,}",
        f"{m.output_tokens:,}",
        f"{m.total_tokens:,}",
        cost,
    ]


def _table(title: str, keys: tuple[str, ...], rows: list[tuple[list[str], Any]]) -> Table:
    table = Table(box=None, header_style="bold", title=title, title_justify="left")
    for col in keys + _NUMBERS:
        table.add_column(col, justify="left" if col in keys else "right", overflow="fold")
    for key, m in rows:
        table.add_row(*key, *_totals(m))
    return table


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
    include_children: Annotated[
        bool,
        typer.Option(
            "--include-children", "-c", help="With RUN_ID: its child runs too (its budget's tree)."
        ),
    ] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Tokens and cost (USD), in total and by provider and model and by agent; for one run also
    by attempt (crashed attempts marked) and by step."""
    start = parse_since(since)
    if include_children and run_id is None:
        raise typer.BadParameter("--include-children needs a RUN_ID", param_hint="RUN_ID")
    with client() as tide:
        if run_id is not None:
            tide.runs.get(run_id)  # an unknown run is an error, not an empty summary
        result = tide.usage.summary(
            run_id, workflow=workflow, since=start, include_children=include_children
        )
    if as_json:
        print_json(result)
        return
    scope = " ".join(
        part
        for part in (
            f"run {run_id}" if run_id else "all runs",
            "and its child runs" if include_children else "",
            f"of workflow {workflow!r}" if workflow else "",
            f"since {start:%Y-%m-%d %H:%M} UTC" if start else "",
        )
        if part
    )
    if not result.calls:
        out.print(f"no usage recorded ({scope})")
        return
    table = _table(
        f"usage: {scope}",
        ("provider", "model"),
        [([m.provider or "", m.model or ""], m) for m in result.by_model],
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
    if any(a.agent is not None for a in result.by_agent):
        print_table(
            _table("by agent", ("agent",), [([a.agent or "(none)"], a) for a in result.by_agent])
        )
    if result.by_attempt:
        several_runs = len({a.run_id for a in result.by_attempt}) > 1
        keys: tuple[str, ...] = (
            ("run", "attempt", "outcome") if several_runs else ("attempt", "outcome")
        )
        print_table(
            _table(
                "by attempt",
                keys,
                [
                    (
                        ([a.run_id] if several_runs else [])
                        + [str(a.attempt), a.outcome.upper() if a.crashed else a.outcome],
                        a,
                    )
                    for a in result.by_attempt
                ],
            )
        )
    if result.by_step:
        several_runs = len({s.run_id for s in result.by_step}) > 1
        step_keys: tuple[str, ...] = ("run", "step") if several_runs else ("step",)
        print_table(
            _table(
                "by step",
                step_keys,
                [
                    (([s.run_id] if several_runs else []) + [s.step or "(workflow body)"], s)
                    for s in result.by_step
                ],
            )
        )
    if any(m.priced_calls != m.calls for m in result.by_model):
        out.print("* some calls have no known price; the cost covers the priced ones")
    if any(a.crashed for a in result.by_attempt):
        out.print("CRASHED: the attempt ended without finishing; its spend was real and counts")
