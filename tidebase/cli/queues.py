"""``tidebase queues list|configure``."""

from __future__ import annotations

from typing import Annotated, TypeVar

import typer
from rich.table import Table

from .common import JsonOption, add_columns, client, out, print_json, print_table

__all__ = ["app"]

T = TypeVar("T")

app = typer.Typer(help="Queues: depth, running runs, caps.", no_args_is_help=True)


@app.command("list")
def list_queues(as_json: Annotated[bool, JsonOption] = False) -> None:
    """Every configured queue and every queue with active runs."""
    with client() as tide:
        queues = tide.queues.list()
    if as_json:
        print_json(queues)
        return
    if not queues:
        out.print("no queues (a queue appears once configured or once a run is enqueued on it)")
        return
    table = Table(box=None, header_style="bold")
    add_columns(
        table,
        ("queue", "depth", "running", "concurrency", "rate/min", "invoke url"),
        ids=("queue", "invoke url"),
    )
    for qi in queues:
        table.add_row(
            qi.name,
            str(qi.depth),
            str(qi.running),
            "∞" if qi.concurrency is None else str(qi.concurrency),
            "∞" if qi.rate_per_minute is None else str(qi.rate_per_minute),
            qi.invoke_url or "",
        )
    print_table(table)


@app.command()
def configure(
    name: Annotated[str, typer.Argument(help="The queue's name.", show_default=False)],
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            help="At most this many running at once.",
            show_default=False,
        ),
    ] = None,
    rate_per_minute: Annotated[
        int | None,
        typer.Option(
            "--rate-per-minute",
            "-r",
            min=1,
            help="At most this many claims a minute.",
            show_default=False,
        ),
    ] = None,
    invoke_url: Annotated[
        str | None,
        typer.Option(
            "--invoke-url",
            help="Make it a push queue: POST each ready run here.",
            show_default=False,
        ),
    ] = None,
    no_concurrency: Annotated[
        bool, typer.Option("--no-concurrency", help="Lift the concurrency cap.")
    ] = False,
    no_rate: Annotated[bool, typer.Option("--no-rate", help="Lift the rate cap.")] = False,
    no_invoke_url: Annotated[
        bool, typer.Option("--no-invoke-url", help="Make it a pull queue again.")
    ] = False,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """Set a queue's caps (they hold across every worker).

    Options not given keep their value; --no-concurrency, --no-rate, --no-invoke-url lift one.
    """
    for given, lifted, option, lift in (
        (concurrency, no_concurrency, "--concurrency", "--no-concurrency"),
        (rate_per_minute, no_rate, "--rate-per-minute", "--no-rate"),
        (invoke_url, no_invoke_url, "--invoke-url", "--no-invoke-url"),
    ):
        if given is not None and lifted:
            raise typer.BadParameter(f"{option} and {lift} contradict each other; give one")
    with client() as tide:
        now = next((qi for qi in tide.queues.list() if qi.name == name), None)
        info = tide.queues.configure(
            name,
            concurrency=_pick(concurrency, no_concurrency, now.concurrency if now else None),
            rate_per_minute=_pick(rate_per_minute, no_rate, now.rate_per_minute if now else None),
            invoke_url=_pick(invoke_url, no_invoke_url, now.invoke_url if now else None),
        )
    if as_json:
        print_json(info)
        return
    cap = "no cap" if info.concurrency is None else f"{info.concurrency} at once"
    rate = "no cap" if info.rate_per_minute is None else f"{info.rate_per_minute}/min"
    out.print(
        f"queue {info.name!r}: concurrency {cap}, rate {rate}"
        + (f", push to {info.invoke_url}" if info.invoke_url else "")
    )


def _pick(given: T | None, lifted: bool, current: T | None) -> T | None:
    """The new value: lifted → None, given → it, else the current one."""
    if lifted:
        return None
    return given if given is not None else current
