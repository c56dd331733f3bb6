"""``TidebaseHooks``: the user's ``RunHooks``, plus run events for what the agents did.

Every callback is forwarded to ``inner``. Agent start/end, tool start/end and handoffs are also
appended to the run's event log (``agent.started``, ``agent.ended``, ``tool.started``,
``tool.ended``, ``agent.handoff``). A replayed run fires the SDK's hooks again; the engine skips
the workflow-body events an earlier attempt already wrote, so none is logged twice. A durable
tool's ``tool.ended`` is not written here: the tool's checkpoint carries it, in the same
statement (one round trip per tool call less), and a replayed call has it already. Usage is
not recorded here: the model wrapper writes it with each call's checkpoint.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agents import RunHooks
from agents.lifecycle import RunHooksBase

from tidebase_core import AsyncRunContext
from tidebase_core.plugin import current_run

from .log import preview, tool_ended, tool_payload
from .tools import is_durable_tool

__all__ = ["TidebaseHooks"]


class TidebaseHooks(RunHooks[Any]):
    """``RunHooks`` that log the run's agent events and forward every callback to ``inner``."""

    def __init__(self, inner: RunHooks[Any] | None = None) -> None:
        if inner is not None and not isinstance(inner, RunHooksBase):
            raise TypeError(
                f"TidebaseHooks(inner=...) takes your agents.RunHooks, got {type(inner).__name__}"
            )
        self.inner = inner

    async def on_llm_start(
        self, context: Any, agent: Any, system_prompt: Any, input_items: Any
    ) -> None:
        await self._forward("on_llm_start", context, agent, system_prompt, input_items)

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        await self._forward("on_llm_end", context, agent, response)

    async def on_agent_start(self, context: Any, agent: Any) -> None:
        await _emit("agent.started", {"agent": agent.name})
        await self._forward("on_agent_start", context, agent)

    async def on_agent_end(self, context: Any, agent: Any, output: Any) -> None:
        await _emit("agent.ended", {"agent": agent.name, "output": preview(output)})
        await self._forward("on_agent_end", context, agent, output)

    async def on_handoff(self, context: Any, from_agent: Any, to_agent: Any) -> None:
        await _emit("agent.handoff", {"from": from_agent.name, "to": to_agent.name})
        await self._forward("on_handoff", context, from_agent, to_agent)

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        await _emit("tool.started", tool_payload(agent.name, _name(tool), _call_id(context)))
        await self._forward("on_tool_start", context, agent, tool)

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: Any) -> None:
        if not (is_durable_tool(tool) and current_run() is not None):
            payload = tool_ended(agent.name, _name(tool), _call_id(context), result)
            await _emit("tool.ended", payload)
        await self._forward("on_tool_end", context, agent, tool, result)

    async def _forward(self, name: str, *args: Any) -> None:
        if self.inner is not None:
            await getattr(self.inner, name)(*args)


async def _emit(type: str, payload: dict[str, Any]) -> None:
    # Replay drives the SDK through the same callbacks, so these count as workflow-body
    # operations: a resumed run skips the ones an earlier attempt logged. Parallel tool calls
    # fire theirs from concurrent tasks: keyed by their call id, not by the order they ran in.
    run = current_run()
    key = payload.get("call_id")
    if isinstance(run, AsyncRunContext):
        await run.events.emit(type, payload, key=key)
    elif run is not None:  # a sync workflow driving the SDK: keep the event loop free
        await asyncio.to_thread(run.events.emit, type, payload, key=key)


def _name(tool: Any) -> str:
    return getattr(tool, "name", type(tool).__name__)


def _call_id(context: Any) -> str | None:
    return getattr(context, "tool_call_id", None)
