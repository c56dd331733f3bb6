"""The run-log entries of what the agents did: their payloads, in one place.

``TidebaseHooks`` writes most of them; a durable tool's ``tool.ended`` is written by the tool's
own checkpoint, in the same statement (``durable_call(log=...)``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["preview", "tool_ended", "tool_payload"]

_PREVIEW = 500  # characters of a result or output kept in an event


def tool_payload(agent: str | None, tool: str, call_id: str | None) -> dict[str, Any]:
    return {"agent": agent, "tool": tool, "call_id": call_id}


def tool_ended(agent: str | None, tool: str, call_id: str | None, result: Any) -> dict[str, Any]:
    return {**tool_payload(agent, tool, call_id), "result": preview(result)}


def preview(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + "…"
