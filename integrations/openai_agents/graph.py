"""``durable_agent``: a copy of an agent graph whose models, tools and guardrails are durable.

The user's agents are never changed. Each agent reachable through handoffs is copied once
(cycles included); in the copies, a ``Model`` instance becomes a ``DurableModel``, function
tools (MCP tools too, as they are listed each turn) become durable tools, and guardrails become
steps. A ``Handoff`` object is copied so that the agent it hands off to is the durable copy.
The copies look the run up when they are called, so one can be built once, outside any run.
"""

from __future__ import annotations

import copy
import weakref
from typing import Any, TypeVar, cast

from agents import Agent, FunctionTool, Handoff, Model

from .guardrails import durable_guardrail
from .models import AgentModelName, durable_model
from .tools import durable_tool

__all__ = ["durable_agent", "is_durable_agent"]

A = TypeVar("A", bound=Agent[Any])

_MARK = "_tidebase_durable"


def durable_agent(agent: A) -> A:
    """A durable copy of ``agent`` and of every agent it can hand off to."""
    return _Copier().agent(agent)


def is_durable_agent(agent: object) -> bool:
    return isinstance(agent, Agent) and getattr(agent, _MARK, False) is True


class _Copier:
    def __init__(self) -> None:
        # Keyed by id(original); the originals are kept so no id is reused meanwhile.
        self._copies: dict[int, tuple[Agent[Any], Agent[Any]]] = {}

    def agent(self, agent: A) -> A:
        if not isinstance(agent, Agent):
            raise TypeError(
                f"expected an agents.Agent, got {type(agent).__name__}; pass the agent object "
                "(not its name)"
            )
        if is_durable_agent(agent):
            return agent
        done = self._copies.get(id(agent))
        if done is not None:
            return done[1]  # type: ignore[return-value]
        durable = agent.clone()
        setattr(durable, _MARK, True)
        self._copies[id(agent)] = (agent, durable)
        if isinstance(agent.model, Model):
            durable.model = durable_model(agent.model, agent=agent.name)
        elif isinstance(agent.model, str):
            durable.model = AgentModelName(agent.model, agent.name)
        durable.tools = [self.tool(tool) for tool in agent.tools]
        durable.handoffs = [self.handoff(target) for target in agent.handoffs]
        durable.input_guardrails = [durable_guardrail(g) for g in agent.input_guardrails]
        durable.output_guardrails = [durable_guardrail(g) for g in agent.output_guardrails]
        if agent.mcp_servers:
            _durable_mcp_tools(durable)
        return cast(A, durable)

    def tool(self, tool: Any) -> Any:
        if not isinstance(tool, FunctionTool):
            return tool  # hosted tools run inside the model call, which is a step
        # An agent used as a tool runs through ``Runner.run``, which is durable inside a run
        # (``install_runner_hook``): its own calls are keyed under this tool's call.
        return durable_tool(tool)

    def handoff(self, target: Any) -> Any:
        if isinstance(target, Agent):
            return self.agent(target)
        if not isinstance(target, Handoff):
            return target
        durable = copy.copy(target)
        invoke = target.on_invoke_handoff

        async def on_invoke_handoff(context: Any, input_json: Any) -> Agent[Any]:
            return self.agent(await invoke(context, input_json))

        durable.on_invoke_handoff = on_invoke_handoff
        # The SDK finds handoff targets through this reference when it restores a RunState
        # (approvals): it must lead to the durable copy too.
        ref = getattr(target, "_agent_ref", None)
        to = ref() if callable(ref) else None
        if isinstance(to, Agent):
            durable._agent_ref = weakref.ref(self.agent(to))
        return durable


def _durable_mcp_tools(agent: Agent[Any]) -> None:
    """MCP tools are listed anew every turn: make each listing's function tools durable."""
    list_tools = agent.get_mcp_tools

    async def get_mcp_tools(run_context: Any) -> list[Any]:
        tools = await list_tools(run_context)
        return [durable_tool(t) if isinstance(t, FunctionTool) else t for t in tools]

    setattr(agent, "get_mcp_tools", get_mcp_tools)  # noqa: B010  # an instance override
