"""The run context in an agent's deps, so tools can checkpoint sub-steps of their own.

Any deps object with the active run under ``run`` (or the ``tide_run`` spelling) works;
``TidebaseDeps`` is a ready-made base::

    @dataclass
    class Deps(TidebaseDeps):
        tickets: TicketClient

    @agent.tool
    async def create_ticket(ctx: RunContext[Deps], title: str) -> str:
        return await ctx.deps.run.step(f"create-ticket:{title}", ..., idempotency_key=...)
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic_ai.exceptions import UserError
from tidebase_core.plugin import AnyRunContext, current_run

__all__ = ["RUN_FIELDS", "TidebaseDeps", "check_deps_run", "run_of"]

RUN_FIELDS = ("run", "tide_run")


@dataclass
class TidebaseDeps:
    """Agent deps carrying the run context (``Tidebase``'s or ``AsyncTidebase``'s)."""

    run: AnyRunContext


def run_of(deps: object) -> tuple[str, AnyRunContext] | None:
    """The field of ``deps`` holding a run context, and that context; None if it has none."""
    for field in RUN_FIELDS:
        value = getattr(deps, field, None)
        if isinstance(value, AnyRunContext):
            return field, value
    return None


def check_deps_run(deps: object) -> None:
    """Refuse deps whose run is not the run executing here: its sub-steps would go astray."""
    found = run_of(deps)
    if found is None:
        return
    field, run = found
    active = current_run()
    if run is active:
        return
    where = (
        "no Tidebase run is active here"
        if active is None
        else f"the active run is {active.run_id!r}"
    )
    raise UserError(
        f"deps.{field} holds run {run.run_id!r}, but {where}. Pass the run context the workflow "
        "function received (deps=Deps(run=run)) and call the agent from inside that workflow "
        "(a thread started without contextvars.copy_context() does not see the run)."
    )
