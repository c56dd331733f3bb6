"""``tidebase mcp`` through the mcp package's own stdio client, against real runs: the client
spawns ``python -m tidebase mcp`` on the test database and calls each tool."""

from __future__ import annotations

import json
import sys
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp", reason="needs tidebase[server]")

from mcp import ClientSession, StdioServerParameters, stdio_client

from tidebase import Tidebase
from tidebase.errors import GatePending

from .cli_helpers import approval_flow, gate_pending, in_thread, parking_flow, wait_for
from .test_cli_runs import two_steps

pytestmark = pytest.mark.slow


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)  # type: ignore[union-attr]


async def call_error(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result.content
    return str(result.content[0].text)  # type: ignore[union-attr]


async def test_the_mcp_tools_operate_real_runs(
    tide: Tidebase, tidebase_env: dict[str, str]
) -> None:
    tide.run("two-steps", two_steps, run_id="mcp-done")
    with pytest.raises(GatePending):
        tide.run("parking", parking_flow, run_id="mcp-park")
    thread, outcome = in_thread(tide, approval_flow, "mcp-gate")
    wait_for(lambda: gate_pending(tide, "mcp-gate"), what="the worker to wait at the gate")

    server = StdioServerParameters(
        command=sys.executable, args=["-m", "tidebase", "mcp"], env=tidebase_env
    )
    with anyio.fail_after(60):
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = {t.name for t in (await session.list_tools()).tools}
            assert tools == {
                "list_runs",
                "get_run",
                "approve_gate",
                "reject_gate",
                "cancel_run",
                "usage_summary",
            }

            runs = await call(session, "list_runs")
            assert {r["run_id"]: r["status"] for r in runs} == {
                "mcp-gate": "waiting",
                "mcp-park": "waiting",
                "mcp-done": "completed",
            }
            assert [r["run_id"] for r in await call(session, "list_runs", status="completed")] == [
                "mcp-done"
            ]
            assert len(await call(session, "list_runs", limit=1)) == 1

            run = await call(session, "get_run", run_id="mcp-gate")
            assert run["run"]["status"] == "waiting"
            assert [s["name"] for s in run["steps"]] == ["plan"]
            assert [(g["name"], g["status"]) for g in run["gates"]] == [("ship", "pending")]
            assert "token" not in run["gates"][0]
            assert "tidebase gates approve mcp-gate ship" in run["next"]

            decided = await call(
                session, "approve_gate", run_id="mcp-gate", gate="ship", actor="agent"
            )
            assert (decided["decision"], decided["actor"]) == ("approved", "agent")
            await anyio.to_thread.run_sync(thread.join, 30)
            assert outcome == ["shipped by agent"]
            assert (await call(session, "get_run", run_id="mcp-gate"))["run"]["status"] == (
                "completed"
            )

            cancelled = await call(session, "cancel_run", run_id="mcp-park", reason="not needed")
            assert cancelled["status"] == "cancelled"
            assert tide.runs.get("mcp-park").status == "cancelled"

            usage = await call(session, "usage_summary", run_id="mcp-done")
            assert (usage["calls"], usage["input_tokens"], usage["output_tokens"]) == (1, 100, 20)
            assert usage["by_model"][0]["model"] == "gpt-4o"
            assert (await call(session, "usage_summary", workflow="two-steps", since="1h"))[
                "calls"
            ] == 1

            assert "list_runs" in await call_error(session, "get_run", run_id="nope")
            assert "no run 'nope'" in await call_error(session, "cancel_run", run_id="nope")
            refused = await call_error(session, "approve_gate", run_id="mcp-park", gate="ship")
            assert "cancel" in refused
            already = await call_error(session, "reject_gate", run_id="mcp-gate", gate="ship")
            assert "already approved by agent" in already
            missing = await call_error(session, "approve_gate", run_id="mcp-gate", gate="launch")
            assert "no gate 'launch'" in missing and "ship" in missing
            assert "use one of" in await call_error(session, "list_runs", status="sleeping")
            assert "24h" in await call_error(session, "usage_summary", since="last week")
