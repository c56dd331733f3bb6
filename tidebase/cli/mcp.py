"""``tidebase mcp``: an MCP server over stdio so an agent can operate Tidebase.

Tools: list_runs, get_run, approve_gate, reject_gate, cancel_run, usage_summary. Each answers
JSON text; a failure is a tool error whose message names the fix. It talks to the database in
process (TIDEBASE_DATABASE_URL / TIDEBASE_SCHEMA, else the embedded server), like the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import typer

from tidebase_core._async.client import AsyncTidebase
from tidebase_core.errors import GateNotFound, RunNotFound, TidebaseError
from tidebase_core.models import RunStatus

from .common import as_jsonable, default_actor, fail, parse_since
from .runs import next_actions, parked_steps

if TYPE_CHECKING:
    from mcp.server import MCPServer

__all__ = ["build_server", "mcp_command"]

INSTRUCTIONS = (
    "Operate Tidebase durable runs: list and inspect runs (steps, resume decisions, gates), "
    "approve or reject approval gates, cancel runs, and summarize token/cost usage. Run ids "
    "and gate names come from list_runs and get_run."
)


def _dump(value: Any) -> str:
    return json.dumps(as_jsonable(value), ensure_ascii=False, default=str)


def build_server(tide: AsyncTidebase) -> MCPServer[Any]:
    """The MCP server's tools, bound to an open ``AsyncTidebase``."""
    from mcp.server import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server: MCPServer[Any] = MCPServer("tidebase", instructions=INSTRUCTIONS)

    async def guarded(call: Callable[[], Awaitable[Any]]) -> str:
        try:
            return _dump(await call())
        except RunNotFound as exc:
            raise ToolError(
                f"no run {exc.run_id!r}: call list_runs for the run ids there are"
            ) from None
        except (TidebaseError, ValueError, TypeError) as exc:
            raise ToolError(str(exc)) from None

    @server.tool(structured_output=False)
    async def list_runs(
        status: str | None = None, workflow: str | None = None, limit: int = 20
    ) -> str:
        """Runs, newest first: run_id, workflow_name, status, attempt, failure_class, times.
        status: pending, queued, running, waiting, completed, failed or cancelled."""

        async def call() -> Any:
            if status is not None and status not in {s.value for s in RunStatus}:
                raise ValueError(
                    f"unknown status {status!r}; use one of "
                    + ", ".join(s.value for s in RunStatus)
                )
            runs = await tide.runs.list(status=status, workflow=workflow, limit=limit)
            return [r.model_dump(mode="json", exclude={"input", "result"}) for r in runs]

        return await guarded(call)

    @server.tool(structured_output=False)
    async def get_run(run_id: str) -> str:
        """One run: its info, steps (status, attempt, resume decision, input hash), gates
        (pending ones are waiting for approve_gate/reject_gate), parked steps, and the next
        actions as tidebase CLI commands."""

        async def call() -> Any:
            run = await tide.runs.get(run_id)
            steps = await tide.runs.steps(run_id)
            gates = await tide.gates.list(run_id=run_id, limit=1000)
            return {
                "run": run,
                "steps": steps,
                "gates": [g.model_dump(mode="json", exclude={"token"}) for g in gates],
                "parked_steps": [s.name for s in parked_steps(run, steps)],
                "next": next_actions(run, steps, gates),
            }

        return await guarded(call)

    async def resolve(
        run_id: str, gate: str, decision: str, actor: str | None, payload: Any
    ) -> str:
        async def call() -> Any:
            try:
                return await tide.gates.resolve(
                    run_id,
                    gate,
                    decision,
                    actor=actor or default_actor("mcp"),
                    payload=payload,
                )
            except GateNotFound:
                names = [g.name for g in await tide.gates.list(run_id=run_id, limit=1000)]
                raise ValueError(
                    f"run {run_id!r} has no gate {gate!r}; its gates: {names or 'none yet'} "
                    "(get_run lists them)"
                ) from None

        return await guarded(call)

    @server.tool(structured_output=False)
    async def approve_gate(
        run_id: str, gate: str, actor: str | None = None, payload: Any = None
    ) -> str:
        """Approve a pending gate (by run id and gate name): the waiting run continues."""
        return await resolve(run_id, gate, "approved", actor, payload)

    @server.tool(structured_output=False)
    async def reject_gate(
        run_id: str, gate: str, actor: str | None = None, payload: Any = None
    ) -> str:
        """Reject a pending gate (by run id and gate name): the run receives the rejection."""
        return await resolve(run_id, gate, "rejected", actor, payload)

    @server.tool(structured_output=False)
    async def cancel_run(run_id: str, reason: str | None = None) -> str:
        """Cancel a run (one-way) and its unfinished children; its worker stops at the next
        step or gate. Returns the run as it is now (cancelled, or completed if it finished)."""

        async def call() -> Any:
            return await tide.runs.cancel(run_id, reason=reason, actor=default_actor("mcp"))

        return await guarded(call)

    @server.tool(structured_output=False)
    async def usage_summary(
        run_id: str | None = None,
        workflow: str | None = None,
        since: str | None = None,
        include_children: bool = False,
    ) -> str:
        """Tokens and cost (USD, as strings) in total and by provider/model and agent (for one
        run also by attempt, crashed ones marked, and by step); for one run (with
        include_children, its child runs too), one workflow, and/or since a time (30m, 24h,
        7d, or an ISO date)."""

        async def call() -> Any:
            try:
                start = parse_since(since)
            except typer.BadParameter as exc:
                raise ValueError(exc.message) from None
            if run_id is not None:
                await tide.runs.get(run_id)
            return await tide.usage.summary(
                run_id, workflow=workflow, since=start, include_children=include_children
            )

        return await guarded(call)

    return server


async def _serve() -> None:
    async with AsyncTidebase() as tide:
        await build_server(tide).run_stdio_async()


def mcp_command() -> None:
    """Serve Tidebase's tools to an agent: an MCP server over stdio.

    Tools: list_runs, get_run, approve_gate, reject_gate, cancel_run, usage_summary. Point your
    MCP client at the command `tidebase mcp` (needs: pip install 'tidebase[server]').
    """
    try:
        import mcp.server  # noqa: F401
    except ImportError:
        fail("`tidebase mcp` needs the mcp package: pip install 'tidebase[server]'")
    import anyio

    try:
        anyio.run(_serve)
    except TidebaseError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
