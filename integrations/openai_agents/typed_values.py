"""Values the SDK types by class (tool results, guardrail info) as stored JSON, and back.

The SDK turns a tool result into what the model sees by its type (``str``, ``ToolOutputText``,
a pydantic model, a list of those, anything else through ``str()``), and ``stop_on_first_tool``
hands the result itself to the caller. So a replayed result must come back as the type the tool
returned: pydantic models and dataclasses are stored with their class, JSON values as they are,
and other objects (and classes defined inside a function) as ``str(result)``, which is what the
model was given.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import pydantic

__all__ = ["dump_typed", "load_typed"]

_TYPED = "$openai_agents.class"


def dump_typed(value: Any) -> Any:
    """JSON values for ``value``, with the class of each model or dataclass in it."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [dump_typed(v) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: dump_typed(v) for k, v in value.items()}
    cls = type(value)
    importable = "<locals>" not in cls.__qualname__
    if importable and (isinstance(value, pydantic.BaseModel) or _is_dataclass_instance(value)):
        dumped = pydantic.TypeAdapter(cls).dump_python(value, mode="json", by_alias=True)
        return {_TYPED: f"{cls.__module__}:{cls.__qualname__}", "value": dumped}
    return str(value)


def load_typed(stored: Any) -> Any:
    """The value ``dump_typed`` stored, models and dataclasses as their class again."""
    if isinstance(stored, list):
        return [load_typed(v) for v in stored]
    if isinstance(stored, dict):
        if _TYPED in stored:
            return pydantic.TypeAdapter(_class(stored[_TYPED])).validate_python(stored["value"])
        return {k: load_typed(v) for k, v in stored.items()}
    return stored


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _class(path: str) -> type:
    module, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not isinstance(found, type):
        raise TypeError(f"stored tool result names {path!r}, which is not a class")
    return found
