"""MCP tools (listed from the agent's servers every turn) are steps like function tools."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from agents import Agent
from tidebase_openai_agents import run_agent

from tidebase.aio import AsyncRunContext, AsyncTidebase

from .scripted import Scripted, call, message
from .test_replay import crash_once, first_and_resumed

mcp_types = pytest.importorskip("mcp.types")
from agents.mcp import MCPServer  # noqa: E402


class WeatherServer(MCPServer):
    """An in-process MCP server behind the SDK's own ``MCPServer`` interface."""

    def __init__(self, ran: Counter[str]) -> None:
        super().__init__()
        self.ran = ran

    @property
    def name(self) -> str:
        return "weather"

    async def connect(self) -> None:
        pass

    async def cleanup(self) -> None:
        pass

    async def list_tools(self, run_context: Any = None, agent: Any = None) -> list[Any]:
        schema = {"type": "object", "properties": {"city": {"type": "string"}}}
        return [mcp_types.Tool(name="forecast", description="Forecast.", inputSchema=schema)]

    async def call_tool(self, tool_name: str, arguments: Any, meta: Any = None) -> Any:
        self.ran[tool_name] += 1
        text = f"rain in {arguments['city']}"
        return mcp_types.CallToolResult(content=[mcp_types.TextContent(type="text", text=text)])

    async def list_prompts(self) -> Any:
        raise NotImplementedError

    async def get_prompt(self, name: str, arguments: Any = None) -> Any:
        raise NotImplementedError


async def test_an_mcp_tool_call_is_replayed_without_calling_the_server(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    agent: Agent[Any] = Agent(
        name="forecaster",
        model=Scripted(
            "forecaster",
            {0: [call("forecast", {"city": "Brest"}, "call_w")], 1: [message("bring a coat")]},
            lambda n: ran.update([n]),
        ),
        mcp_servers=[WeatherServer(ran)],
    )

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return crash_once(run, (await run_agent(agent, "weather in Brest?")).final_output)

    assert await first_and_resumed(atide, "oai-mcp", workflow) == ("bring a coat", "bring a coat")
    assert ran == {"forecaster": 2, "forecast": 1}
    assert "forecaster.run/tool.forecast.call_w" in [
        s.name for s in await atide.runs.steps("oai-mcp")
    ]
