"""Values the SDK types by class (tool results, guardrail info, a tool's ``context=``) as stored
JSON, and back.

The SDK turns a tool result into what the model sees by its type (``str``, ``ToolOutputText``,
a pydantic model, a list of those, anything else through ``str()``), and ``stop_on_first_tool``
hands the result itself to the caller. So a replayed result must come back as the type the tool
returned: pydantic models and dataclasses are stored with their class, JSON values as they are,
and other objects (and classes defined inside a function) as ``str(result)``, which is what the
model was given.

A class name read from the database is never imported: it is found among the classes registered
when a tool was wrapped (its return annotation), or among modules already imported, and must be
a pydantic model or a dataclass either way.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

import pydantic

from tidebase_core.plugin import type_adapter

__all__ = [
    "apply_context",
    "capturable",
    "dump_context",
    "dump_typed",
    "load_typed",
    "register_classes_of",
]

_TYPED = "$openai_agents.class"
_TUPLE = "$openai_agents.tuple"

# Qualified name -> class: the allow-list filled when tools are wrapped (and by first dumps).
_known: dict[str, type] = {}


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _is_data_class(cls: Any) -> bool:
    return isinstance(cls, type) and (
        issubclass(cls, pydantic.BaseModel) or dataclasses.is_dataclass(cls)
    )


def capturable(value: Any) -> bool:
    """Is ``value`` a pydantic model or dataclass instance (stored with its class)?"""
    return not isinstance(value, type) and _is_data_class(type(value))


def register_classes_of(function: Callable[..., Any]) -> None:
    """Allow the models and dataclasses named in ``function``'s return annotation."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # unresolvable forward references: the sys.modules lookup remains
        return
    todo: list[Any] = [hints.get("return")]
    while todo:
        hint = todo.pop()
        if isinstance(hint, type) and _is_data_class(hint):
            _known.setdefault(_name(hint), hint)
        todo.extend(typing.get_args(hint))


def dump_typed(value: Any) -> Any:
    """JSON values for ``value``, with the class of each model or dataclass in it."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list):
        return [dump_typed(v) for v in value]
    if isinstance(value, tuple) and type(value) is tuple:
        # Kept a tuple: the SDK gives the model str(result), where ('a',) and ['a'] differ.
        return {_TUPLE: [dump_typed(v) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: dump_typed(v) for k, v in value.items()}
    cls = type(value)
    if "<locals>" not in cls.__qualname__ and capturable(value):
        _known.setdefault(_name(cls), cls)
        return {_TYPED: _name(cls), "value": dump_context(value)}
    return str(value)


def load_typed(stored: Any) -> Any:
    """The value ``dump_typed`` stored, models and dataclasses as their class again."""
    if isinstance(stored, list):
        return [load_typed(v) for v in stored]
    if isinstance(stored, dict):
        if _TUPLE in stored and len(stored) == 1:
            return tuple(load_typed(v) for v in stored[_TUPLE])
        if _TYPED in stored:
            return type_adapter(_class(stored[_TYPED])).validate_python(stored["value"])
        return {k: load_typed(v) for k, v in stored.items()}
    return stored


def dump_context(value: Any) -> Any:
    """The JSON fields of a model or dataclass instance (its class is known to the reader)."""
    return type_adapter(type(value)).dump_python(value, mode="json", by_alias=True)


def apply_context(target: Any, stored: Any) -> None:
    """Set ``target``'s fields to the ones stored: in place, since the caller holds the object
    it passed as ``context=`` and reads it after the run."""
    restored = type_adapter(type(target)).validate_python(stored)
    if isinstance(target, pydantic.BaseModel):
        for name in type(target).model_fields:
            setattr(target, name, getattr(restored, name))
        return
    for field in dataclasses.fields(target):
        object.__setattr__(target, field.name, getattr(restored, field.name))


def _class(path: str) -> type:
    known = _known.get(path)
    if known is not None:
        return known
    # Only among modules already imported: a stored name never triggers an import.
    module_name, _, qualname = path.partition(":")
    found: Any = sys.modules.get(module_name)
    for part in qualname.split(".") if found is not None else ():
        found = getattr(found, part, None)
    if isinstance(found, types.ModuleType) or not _is_data_class(found):
        raise TypeError(
            f"a stored value names {path!r}, which is not a registered or already imported "
            "pydantic model or dataclass; import its module before resuming the run"
        )
    _known[path] = found
    return typing.cast(type, found)
