"""``tidebase runs list|show|watch|cancel|recover|retry-step|complete-step``."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tidebase_core._sync.client import Tidebase
from tidebase_core.budgets import Budget
from tidebase_core.models import (
    Event,
    GateInfo,
    GateStatus,
    RunInfo,
    RunStatus,
    StepInfo,
    StepStatus,
)
from tidebase_core.replay import ResumeDecision

from .common import (
    JsonOption,
    add_columns,
    client,
    commands,
    default_actor,
    err,
    fail,
    out,
    parse_json_option,
    preview,
    print_json,
    print_table,
    q,
    when,
)

__all__ = ["app", "next_actions", "parked_steps"]

app = typer.Typer(
    help="Look at runs and act on them: list, show, watch, cancel, recover, settle parked steps.",
    no_args_is_help=True,
)

RunArg = Annotated[str, typer.Argument(help="The run's id.", show_default=False)]
StepArg = Annotated[
    str,
    typer.Argument(help="The step's key, as `tidebase runs show` lists it.", show_default=False),
]
ActorOption = Annotated[
    str | None,
    typer.Option(
        "--actor",
        help="Who acts (recorded in the run's log; default: your login).",
        show_default=False,
    ),
]

_STATUS_STYLE = {
    "completed": "green",
    "failed": "red",
    "cancelled": "dim",
    "waiting": "yellow",
    "running": "cyan",
    "pending": "blue",
    "queued": "blue",
}
_TERMINAL = {RunStatus.COMPLETED, RunStatus.CANCELLED}
_PARKED = {ResumeDecision.MANUAL_REVIEW, ResumeDecision.FAILED}


def _get(tide: Tidebase, run_id: str) -> RunInfo:
    return tide.runs.get(run_id)  # RunNotFound: `client()` says how to list the runs


# --- list ------------------------------------------------------------------------------------


@app.command("list")
def list_runs(
    status: Annotated[
        RunStatus | None,
        typer.Option("--status", "-s", help="Only runs with this status.", show_default=False),
    ] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only runs of this workflow.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10_000)] = 50,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """The newest runs first: id, workflow, status, attempt, when."""
    with client() as tide:
        runs = tide.runs.list(status=status, workflow=workflow, limit=limit)
    if as_json:
        print_json(runs)
        return
    if not runs:
        out.print(
            "no runs"
            + (f" with status {status.value}" if status else "")
            + (f" of workflow {workflow!r}" if workflow else "")
        )
        return
    table = Table(title=None, box=None, header_style="bold")
    add_columns(
        table,
        ("run", "workflow", "status", "attempt", "created", "updated", "failure"),
        ids=("run", "workflow"),
    )
    for run in runs:
        table.add_row(
            run.run_id,
            run.workflow_name,
            _styled(run.status),
            str(run.attempt),
            when(run.created_at),
            when(run.updated_at),
            run.failure_class or "",
        )
    print_table(table)


def _styled(status: str) -> Text:
    return Text(status, style=_STATUS_STYLE.get(status, "white"))


# --- show ------------------------------------------------------------------------------------


def parked_steps(run: RunInfo, steps: list[StepInfo]) -> list[StepInfo]:
    """Steps that wait for a person: failed or interrupted, with a resume decision that forbids
    running them again by themselves (``manual_review``, ``failed``), in a run nobody holds."""
    if run.status in _TERMINAL or run.status is RunStatus.RUNNING:
        return []
    return [
        s for s in steps if s.status is not StepStatus.COMPLETED and s.resume_decision in _PARKED
    ]


def next_actions(run: RunInfo, steps: list[StepInfo], gates: list[GateInfo]) -> list[str]:
    """What a person can do next, as exact ``tidebase`` command lines."""
    rid = q(run.run_id)
    lines: list[str] = []
    for step in parked_steps(run, steps):
        lines.append(f"tidebase runs retry-step {rid} {q(step.name)}")
        lines.append(f"tidebase runs complete-step {rid} {q(step.name)} --output JSON")
    if lines:
        lines.append(f"tidebase runs recover {rid}")
        return lines
    for gate in gates:
        if gate.status is GateStatus.PENDING:
            lines.append(f"tidebase gates approve {rid} {q(gate.name)}")
            lines.append(f"tidebase gates reject {rid} {q(gate.name)}")
    if lines:
        return lines
    if run.status is RunStatus.FAILED and run.failure_class == "budget":
        holder = q(run.budget_run_id or run.run_id)
        return [f"tidebase runs set-budget {holder} --usd AMOUNT", f"tidebase runs recover {rid}"]
    if run.status is RunStatus.FAILED:
        return [f"tidebase runs recover {rid}"]
    if run.status in (RunStatus.RUNNING, RunStatus.PENDING, RunStatus.QUEUED, RunStatus.WAITING):
        return [f"tidebase runs watch {rid}", f"tidebase runs cancel {rid}"]
    return []


def _next_text(run: RunInfo, steps: list[StepInfo], gates: list[GateInfo]) -> str:
    parked = parked_steps(run, steps)
    if parked:
        names = ", ".join(repr(s.name) for s in parked)
        return (
            f"parked for review: step {names} may already have taken effect. Check what it did, "
            "then run it again (retry-step) or record its result by hand (complete-step), and "
            "re-invoke the run (rerun your code, or recover it for a worker):"
        )
    if any(g.status is GateStatus.PENDING for g in gates):
        return (
            "waiting at a gate: decide it (a worker waiting on it continues at once; a run "
            "parked with wait=False continues when re-invoked):"
        )
    if run.status is RunStatus.FAILED and run.failure_class == "budget":
        return (
            "stopped by its budget: raise (or --remove) the budget, then re-invoke the run "
            "(rerun your code with the same run id, or recover it for a worker):"
        )
    if run.status is RunStatus.FAILED:
        return "failed: put it back for a worker (or rerun your code with the same run id):"
    if run.status in (RunStatus.COMPLETED, RunStatus.CANCELLED):
        return f"{run.status.value}: nothing to do"
    return f"{run.status.value}: follow it live, or stop it:"


@app.command()
def show(run_id: RunArg, as_json: Annotated[bool, JsonOption] = False) -> None:
    """A run, its steps and gates, and what to do next.

    Steps with their status, attempt, resume decision and input hash; a step parked for review
    and a pending gate come with the exact commands that settle them.
    """
    with client() as tide:
        run = _get(tide, run_id)
        steps = tide.runs.steps(run_id)
        gates = tide.gates.list(run_id=run_id, limit=1000)
        children = tide.runs.children(run_id)
    actions = next_actions(run, steps, gates)
    if as_json:
        print_json(
            {
                "run": run,
                "steps": steps,
                # The resolve token stays out: it is the gate's bearer credential.
                "gates": [g.model_dump(mode="json", exclude={"token"}) for g in gates],
                "children": [c.run_id for c in children],
                "parked_steps": [s.name for s in parked_steps(run, steps)],
                "next": actions,
            }
        )
        return
    info = Table(show_header=False, box=None, pad_edge=False)
    info.add_column(style="bold", no_wrap=True)
    info.add_column()
    info.add_row("run", run.run_id)
    info.add_row("workflow", run.workflow_name)
    info.add_row("status", _styled(run.status))
    info.add_row("attempt", str(run.attempt))
    if run.failure_class:
        info.add_row("failure class", run.failure_class)
    if run.budget is not None:
        whose = "" if run.budget_run_id == run.run_id else f" (of run {run.budget_run_id})"
        info.add_row("budget", f"{run.budget}{whose}; spent {run.spend}")
    if run.error:
        info.add_row("error", f"{run.error.get('type', 'error')}: {run.error.get('message', '')}")
    if run.result is not None:
        info.add_row("result", preview(run.result, 100))
    if run.input is not None:
        info.add_row("input", preview(run.input, 100))
    info.add_row("created", when(run.created_at))
    info.add_row("updated", when(run.updated_at))
    if run.completed_at:
        info.add_row("completed", when(run.completed_at))
    if children:
        info.add_row("children", ", ".join(c.run_id for c in children))
    print_table(info)

    if steps:
        out.print()
        table = Table(box=None, header_style="bold", title_justify="left")
        add_columns(
            table,
            ("step", "status", "attempt", "resume decision", "input hash", "output / error"),
            ids=("step",),
        )
        parked = {s.name for s in parked_steps(run, steps)}
        for s in steps:
            status = "parked" if s.name in parked else s.status.value
            style = {"completed": "green", "failed": "red", "parked": "bold yellow"}.get(
                status, "cyan"
            )
            detail = (
                f"{s.error.get('type', 'error')}: {s.error.get('message', '')}"
                if s.error
                else preview(s.output)
            )
            table.add_row(
                s.name,
                _styled_as(status, style),
                str(s.attempt),
                s.resume_decision or "",
                (s.input_hash or "")[:12],
                preview(detail, 70),
            )
        print_table(table)
    if gates:
        out.print()
        table = Table(box=None, header_style="bold")
        add_columns(
            table,
            ("gate", "status", "prompt", "actor", "opened", "decided"),
            ids=("gate",),
        )
        for g in gates:
            style = {"pending": "bold yellow", "approved": "green", "rejected": "red"}[g.status]
            table.add_row(
                g.name,
                _styled_as(g.status.value, style),
                preview(g.prompt, 60),
                g.actor or "",
                when(g.created_at),
                when(g.resolved_at),
            )
        print_table(table)
    out.print()
    out.print(_next_text(run, steps, gates))
    commands(actions)


def _styled_as(text: str, style: str) -> Text:
    return Text(text, style=style)


# --- watch -----------------------------------------------------------------------------------


def describe(event: Event) -> str:
    """One line for an event: its type and the payload's gist."""
    p = event.payload if isinstance(event.payload, dict) else {}
    if event.type == "usage.recorded":
        model = "/".join(str(p[k]) for k in ("provider", "model") if p.get(k))
        tokens = f"{p.get('input_tokens') or 0} in, {p.get('output_tokens') or 0} out"
        cost = f", ${p['cost_usd']}" if p.get("cost_usd") is not None else ""
        return f"{model or p.get('kind', 'usage')}: {tokens}{cost}"
    name = p.get("step") or p.get("name") or p.get("key")
    parts: list[str] = []
    if name:
        parts.append(str(name))
    if "decision" in p:
        parts.append(str(p["decision"]))
    if p.get("actor"):
        parts.append(f"by {p['actor']}")
    if p.get("reason"):
        parts.append(f"reason: {p['reason']}")
    if p.get("error"):
        e = p["error"]
        parts.append(
            f"{e.get('type', 'error')}: {e.get('message', '')}" if isinstance(e, dict) else str(e)
        )
    if not parts and event.payload is not None:
        parts.append(preview(event.payload, 80))
    return " ".join(parts)


@app.command()
def watch(
    run_id: RunArg,
    after: Annotated[int, typer.Option("--after", min=0, help="Start after this event seq.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each event as one JSON line.")
    ] = False,
) -> None:
    """Follow a run's events live until it completes, fails or is cancelled.

    One line per event (--json: one JSON object per line). Ctrl-C stops watching; the run goes on.
    """
    with client() as tide:
        _get(tide, run_id)
        events = tide.runs.subscribe(run_id, after_seq=after)
        try:
            if as_json:
                for event in events:
                    typer.echo(event.model_dump_json())
            else:
                with err.status(f"watching run {run_id} (Ctrl-C stops watching) …"):
                    for event in events:
                        out.print(
                            f"{when(event.created_at)} {event.seq:>5} "
                            f"{_colored_type(event.type)} {escape(describe(event))}",
                            markup=True,
                        )
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        run = tide.runs.get(run_id)
    if not as_json:
        out.print(f"run {run.run_id} is {run.status.value}")


def _colored_type(kind: str) -> str:
    style = "white"
    if kind.endswith(("failed", "cancelled")):
        style = "red"
    elif kind.endswith("completed") or kind == "gate.resolved":
        style = "green"
    elif kind.startswith("gate."):
        style = "yellow"
    return f"[{style}]{escape(kind):<16}[/]"


# --- acting on a run -------------------------------------------------------------------------


@app.command()
def cancel(
    run_id: RunArg,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (recorded).")] = None,
    actor: ActorOption = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait until its worker has stopped (lease released).")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.0, help="Seconds --wait waits at most.")
    ] = 60.0,
) -> None:
    """Cancel a run (one-way) and its unfinished children.

    Its worker stops at the next step or gate; its gates can no longer be decided. With --wait,
    return once the worker has let go of the run (exit 1 if it still holds it after --timeout).
    """
    with client() as tide:
        before = _get(tide, run_id)
        run = tide.runs.cancel(run_id, reason=reason, actor=actor or default_actor())
        if before.status in _TERMINAL:
            out.print(f"run {run.run_id} was already {before.status.value}: nothing to cancel")
        elif run.status is RunStatus.CANCELLED:
            out.print(f"cancelled run {run.run_id}; its worker stops at its next step or gate")
        else:
            out.print(f"run {run.run_id} {run.status.value} before the cancel: nothing to cancel")
        # A worker held it when we cancelled: wait until it let go (it may have already: the
        # cancel wakes a worker waiting at a gate at once).
        if wait and _held(before) and run.status is RunStatus.CANCELLED:
            with err.status(f"waiting for run {run_id}'s worker to stop …"):
                deadline = time.monotonic() + timeout
                while _held(run):
                    if time.monotonic() > deadline:
                        fail(
                            f"run {run_id!r} is cancelled but its worker still holds it after "
                            f"{timeout:g}s: its current step is still running (it stops at the "
                            "next step boundary; a step's own timeout_s bounds it)"
                        )
                    time.sleep(0.1)
                    run = tide.runs.get(run_id)
            out.print(f"its worker has stopped; run {run_id} is {run.status.value}")


def _held(run: RunInfo) -> bool:
    """Does a worker still hold the run (an unexpired lease)?"""
    expires = run.lease_expires_at
    return expires is not None and expires > datetime.now(UTC)


@app.command()
def recover(
    run_id: RunArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "manual",
) -> None:
    """Put a failed or stalled run back where something re-invokes it.

    A queued run goes back on its queue; a plain run becomes pending for a worker with its
    workflow registered (or its recovery webhook).
    """
    with client() as tide:
        before = _get(tide, run_id)
        run = tide.runs.recover(run_id, reason=reason)
    if run.status in _TERMINAL:
        out.print(f"run {run.run_id} is {run.status.value}: there is nothing to recover")
        return
    out.print(f"run {run.run_id}: {before.status.value} → {run.status.value}")
    if run.status is RunStatus.QUEUED:
        out.print("a worker on its queue picks it up next")
    elif run.status is RunStatus.PENDING:
        out.print(
            f"a worker with workflow {run.workflow_name!r} registered (tidebase worker "
            "MODULE:CLIENT) resumes it; or rerun your code with the same run id"
        )


@app.command("set-budget")
def set_budget(
    run_id: RunArg,
    usd: Annotated[
        str | None, typer.Option("--usd", help="Cap on the cost in dollars, e.g. 5.00.")
    ] = None,
    tokens: Annotated[int | None, typer.Option("--tokens", help="Cap on total tokens.")] = None,
    input_tokens: Annotated[
        int | None, typer.Option("--input-tokens", help="Cap on input tokens.")
    ] = None,
    output_tokens: Annotated[
        int | None, typer.Option("--output-tokens", help="Cap on output tokens.")
    ] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the run's budget.")] = False,
) -> None:
    """Set (or --remove) the budget of a run and its child runs; a run stopped by it continues
    when invoked again."""
    caps = (usd, tokens, input_tokens, output_tokens)
    if remove == any(c is not None for c in caps):
        raise typer.BadParameter("give caps (--usd, --tokens, …) or --remove", param_hint="caps")
    try:
        dollars = None if usd is None else Decimal(usd)
    except ArithmeticError:
        raise typer.BadParameter(f"--usd must be an amount such as 5.00, got {usd!r}") from None
    try:
        budget = (
            None
            if remove
            else Budget(
                usd=dollars, tokens=tokens, input_tokens=input_tokens, output_tokens=output_tokens
            )
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with client() as tide:
        _get(tide, run_id)
        run = tide.runs.set_budget(run_id, budget)
    if budget is None:
        out.print(f"run {run_id}: budget removed")
    else:
        out.print(f"run {run_id}: budget {budget}; spent so far {run.spend}")
    if run.status is RunStatus.FAILED and run.failure_class == "budget":
        out.print("re-invoke the run: rerun your code with the same run id, or")
        commands([f"tidebase runs recover {q(run_id)}"])


@app.command("retry-step")
def retry_step(run_id: RunArg, step: StepArg, actor: ActorOption = None) -> None:
    """Release a step parked for review: the next invocation of the run executes it again."""
    with client() as tide:
        _get(tide, run_id)
        tide.runs.retry_step(run_id, step, actor=actor or default_actor())
    out.print(f"step {step!r} of run {run_id} released: the next invocation runs it again")
    out.print("re-invoke the run: rerun your code with the same run id, or")
    commands([f"tidebase runs recover {q(run_id)}"])


@app.command("complete-step")
def complete_step(
    run_id: RunArg,
    step: StepArg,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            help='The step\'s result as JSON, e.g. \'{"id": "ch_1"}\'.',
            show_default=False,
        ),
    ],
    actor: ActorOption = None,
) -> None:
    """Record a parked step's result by hand: the next invocation replays it as the output."""
    value = parse_json_option(output, "--output")
    with client() as tide:
        _get(tide, run_id)
        tide.runs.complete_step(run_id, step, value, actor=actor or default_actor())
    out.print(f"step {step!r} of run {run_id} completed by hand with {preview(value)}")
    out.print("re-invoke the run: rerun your code with the same run id, or")
    commands([f"tidebase runs recover {q(run_id)}"])
