"""How LangChain results are stored in checkpoints and come back from them.

Messages go through LangChain's own serialization (``langchain_core.load.dumpd``/``load``),
read back with an explicit allow-list of message classes: a class named in the database is
never imported. A LangGraph ``Command``/``Send`` a tool returned is stored field by field and
rebuilt as one. Anything else must be JSON (pydantic stores it as such).
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.load import dumpd, load
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    RemoveMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatResult

__all__ = [
    "CHECKPOINTED",
    "LEDGERED",
    "MARK",
    "REPLAYED",
    "REPLAYED_TOOL",
    "dump_result",
    "dump_value",
    "load_result",
    "load_value",
    "mark",
]

# generation_info key marking a generation Tidebase replayed, checkpointed or (a model built
# with cache=False) ledgered: its usage is in the ledger already, the callback handler leaves
# it alone.
MARK = "tidebase"
REPLAYED = "replayed"
CHECKPOINTED = "checkpointed"
LEDGERED = "ledgered"
# Metadata key marking the tool run a replayed tool call fires (its tracers and handlers see it).
REPLAYED_TOOL = "tidebase_replayed"

MESSAGE_CLASSES: tuple[type[BaseMessage], ...] = (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    ChatMessage,
    FunctionMessage,
    RemoveMessage,
)
"""The classes a checkpoint may hold (LangChain's ``load`` refuses any other)."""

_TAG = "$langchain"  # marks a LangChain object inside a stored tool result


# The serialized ids of the allowed classes, checked before ``load`` sees the data: older
# langchain-core releases have no ``allowed_objects`` and would import within LangChain's
# namespaces whatever class the data names.
_ALLOWED_IDS = {tuple(cls.lc_id()) for cls in MESSAGE_CLASSES}
_LOAD_ALLOWS = "allowed_objects" in inspect.signature(load).parameters


def _load_message(data: Any) -> BaseMessage:
    named = tuple(data.get("id") or ()) if isinstance(data, dict) else ()
    if named not in _ALLOWED_IDS or data.get("type") != "constructor":
        raise ValueError(
            f"a LangChain checkpoint names {'.'.join(named) or 'no class'}, which is not allowed "
            f"here (a message class: {', '.join(c.__name__ for c in MESSAGE_CLASSES)})"
        )
    with warnings.catch_warnings():
        # `load` is flagged beta in langchain-core; it is the documented way to read `dumpd`.
        warnings.simplefilter("ignore", LangChainBetaWarning)
        message = load(data, allowed_objects=MESSAGE_CLASSES) if _LOAD_ALLOWS else load(data)
    if not isinstance(message, BaseMessage):
        raise TypeError(f"a LangChain checkpoint holds {type(message).__name__}, not a message")
    return message


def dump_result(result: ChatResult) -> dict[str, Any]:
    """A chat model's result (what ``_generate`` returns) as JSON."""
    return {
        "generations": [
            {
                "message": dumpd(g.message),
                "info": {k: v for k, v in (g.generation_info or {}).items() if k != MARK} or None,
            }
            for g in result.generations
        ],
        "llm_output": result.llm_output,
    }


def load_result(data: dict[str, Any]) -> ChatResult:
    """``dump_result`` read back, each generation marked as replayed."""
    return ChatResult(
        generations=[
            ChatGeneration(
                message=_load_message(g["message"]),
                generation_info={**(g.get("info") or {}), MARK: REPLAYED},
            )
            for g in data["generations"]
        ],
        llm_output=data.get("llm_output"),
    )


def mark(result: ChatResult, how: str) -> ChatResult:
    for gen in result.generations:
        gen.generation_info = {**(gen.generation_info or {}), MARK: how}
    return result


def dump_value(value: Any) -> Any:
    """A tool's (or an agent's) output as JSON: messages, Commands and Sends kept as such."""
    if isinstance(value, BaseMessage):
        return {_TAG: "message", "data": dumpd(value)}
    command, send = _langgraph_types()
    if command is not None and isinstance(value, command):
        data = {f.name: dump_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {_TAG: "command", "data": data}
    if send is not None and isinstance(value, send):
        return {_TAG: "send", "node": value.node, "arg": dump_value(value.arg)}
    if isinstance(value, dict):
        return {k: dump_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [dump_value(v) for v in value]
    return value


def load_value(data: Any) -> Any:
    if isinstance(data, list):
        return [load_value(v) for v in data]
    if not isinstance(data, dict):
        return data
    kind = data.get(_TAG)
    if kind == "message":
        return _load_message(data["data"])
    if kind in ("command", "send"):
        command, send = _langgraph_types()
        if command is None:
            raise RuntimeError(f"a checkpoint holds a LangGraph {kind}: pip install langgraph")
        if kind == "command":
            return command(**{k: load_value(v) for k, v in data["data"].items()})
        return send(data["node"], load_value(data["arg"]))
    return {k: load_value(v) for k, v in data.items()}


def _langgraph_types() -> tuple[Any, Any]:
    """LangGraph's ``Command`` and ``Send``, or Nones: LangGraph is optional."""
    try:
        from langgraph.types import Command, Send
    except ImportError:
        return None, None
    return Command, Send
