"""How LangChain results are stored in checkpoints and come back from them.

A replayed result must be what a fresh one was: an ``AIMessage`` with its tool calls, ids and
usage, a ``ToolMessage`` with its ``tool_call_id``, a LangGraph ``Command`` a tool returned.
pydantic would store messages as plain dicts, so results travel wrapped in ``Stored``, whose
codec (registered with the engine on import) keeps every message's class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
from langchain_core.outputs import ChatGeneration, Generation

from tidebase_core.serialization import register_codec

__all__ = [
    "CHECKPOINTED",
    "MARK",
    "REPLAYED",
    "Stored",
    "dump_generations",
    "load_generations",
    "unwrap",
]

# generation_info key marking a generation Tidebase replayed or checkpointed (usage recorded).
MARK = "tidebase"
REPLAYED = "replayed"
CHECKPOINTED = "checkpointed"

_TAG = "__langchain__"  # marks a non-JSON value inside a stored result


class Stored:
    """A LangChain result on its way into a checkpoint (or back out of one).

    A plain class on purpose: pydantic stores dataclasses and models itself, and only hands a
    type it does not know to the codec registered below.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def unwrap(stored: Any) -> Any:
    """The result a checkpoint holds (``stored`` as revived by the engine's decoder)."""
    if not isinstance(stored, Stored):
        raise TypeError(
            f"a LangChain checkpoint holds {type(stored).__name__}, not a Tidebase-stored "
            "result; was this step written by another plugin or version?"
        )
    return stored.value


def _dump(value: Any) -> Any:
    if isinstance(value, BaseMessage):
        return {_TAG: "message", "data": message_to_dict(value)}
    command, send = _langgraph_types()
    if command is not None and isinstance(value, command):
        data = {f.name: _dump(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {_TAG: "command", "data": data}
    if send is not None and isinstance(value, send):
        return {_TAG: "send", "node": value.node, "arg": _dump(value.arg)}
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_dump(v) for v in value]
    return value  # JSON, or anything else pydantic can store


def _load(data: Any) -> Any:
    if isinstance(data, list):
        return [_load(v) for v in data]
    if not isinstance(data, dict):
        return data
    kind = data.get(_TAG)
    if kind == "message":
        return messages_from_dict([data["data"]])[0]
    if kind in ("command", "send"):
        command, send = _langgraph_types()
        if command is None:
            raise RuntimeError(f"a checkpoint holds a LangGraph {kind}: pip install langgraph")
        if kind == "command":
            return command(**{k: _load(v) for k, v in data["data"].items()})
        return send(data["node"], _load(data["arg"]))
    return {k: _load(v) for k, v in data.items()}


def _langgraph_types() -> tuple[Any, Any]:
    """LangGraph's ``Command`` and ``Send``, or Nones: LangGraph is optional."""
    try:
        from langgraph.types import Command, Send
    except ImportError:
        return None, None
    return Command, Send


def dump_generations(generations: Sequence[Generation]) -> list[dict[str, Any]]:
    """A model call's result (what ``BaseCache.update`` receives) as storable data."""
    rows: list[dict[str, Any]] = []
    for gen in generations:
        info = {k: v for k, v in (gen.generation_info or {}).items() if k != MARK}
        if isinstance(gen, ChatGeneration):
            rows.append({"message": gen.message, "info": info or None})
        else:
            rows.append({"text": gen.text, "info": info or None})
    return rows


def load_generations(rows: list[dict[str, Any]]) -> list[Generation]:
    """Generations back from ``dump_generations``, marked as replayed (no usage is recorded)."""
    generations: list[Generation] = []
    for row in rows:
        info = {**(row.get("info") or {}), MARK: REPLAYED}
        if "message" in row:
            generations.append(ChatGeneration(message=row["message"], generation_info=info))
        else:
            generations.append(Generation(text=row["text"], generation_info=info))
    return generations


register_codec(
    Stored,
    tag="langchain",
    dump=lambda stored: _dump(stored.value),
    load=lambda data, _type: Stored(_load(data)),
)
