"""The one place where Python values become stored JSON, and stored JSON becomes values again.

- ``encode`` turns a step output, run result or run input into JSON text for a ``jsonb`` column.
  Anything pydantic can dump works: models, dataclasses, datetimes, UUIDs, enums, bytes
  (base64), plus dicts/lists/tuples/sets of those. NaN and ±inf are refused rather than
  silently stored as ``null`` (a replay would then return a different value than the run saw).
- ``input_hash`` is the sha256 of key-order-independent JSON: ``{"a": 1, "b": 2}`` and
  ``{"b": 2, "a": 1}`` hash the same, and so do two sets with the same members.
- ``decode`` turns stored JSON back into plain JSON values, or, given a type, re-validates it
  into that type so a replayed step returns what a fresh one returns.
- ``register_codec`` teaches both directions a type pydantic cannot handle (a framework's result
  object, say): it is stored as ``{"$tidebase": tag, "value": ...}`` and loaded back by its
  codec, with or without an output type. Plugins register theirs on import; the engine imports
  the ``tidebase.integrations`` entry points the first time it meets a type or tag it does not
  know.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import typing
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pydantic
import pydantic_core

from .errors import NotSerializable

__all__ = [
    "Codec",
    "decode",
    "decode_json",
    "encode",
    "encode_with_hash",
    "input_hash",
    "output_type_of",
    "register_codec",
]

_ANY = object()  # marker: no output type, return plain JSON values
_NULL_HASH = hashlib.sha256(b"null").hexdigest()


TAG = "$tidebase"
_TAG_TEXT = f'"{TAG}"'
_TAG_BYTES = _TAG_TEXT.encode()


@dataclass(frozen=True, slots=True)
class Codec:
    """How to store instances of ``cls`` (``dump`` → JSON-able) and load them back.

    ``load(value, output_type)`` gets the type the caller asked for (None when it did not).
    """

    tag: str
    cls: type
    dump: Callable[[Any], Any]
    load: Callable[[Any, Any], Any]


_codecs: dict[str, Codec] = {}
_plugins_loaded = False


def register_codec(
    cls: type,
    *,
    tag: str,
    dump: Callable[[Any], Any],
    load: Callable[[Any, Any], Any],
) -> None:
    """Store ``cls`` instances with ``dump`` and load them back with ``load`` (see ``Codec``)."""
    _codecs[tag] = Codec(tag, cls, dump, load)


def _codec_for(value: Any) -> Codec | None:
    for codec in _codecs.values():
        if isinstance(value, codec.cls):
            return codec
    return None


def _load_plugins() -> bool:
    """Import the installed integrations once (they register codecs); True if it was now."""
    global _plugins_loaded
    if _plugins_loaded:
        return False
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for entry in entry_points(group="tidebase.integrations"):
        try:
            entry.load()
        except Exception:  # a framework that is not installed: its plugin cannot load
            continue
    return True


def _fallback(value: Any) -> Any:
    """pydantic's hook for values it does not know: a registered codec, or an error."""
    codec = _codec_for(value)
    if codec is None and _load_plugins():
        codec = _codec_for(value)
    if codec is None:
        raise TypeError(f"Unable to serialize unknown type: {type(value)}")
    return {TAG: codec.tag, "value": codec.dump(value)}


_PLAIN = (str, int, float, bool, type(None), dict, list, tuple)


def _as_codec_value(value: Any) -> Any:
    """A registered codec wins over pydantic's own handling (a dataclass result object would
    otherwise be stored field by field and come back as a dict)."""
    if isinstance(value, _PLAIN):
        return value
    codec = _codec_for(value)
    if codec is None and _codecs_possible(value) and _load_plugins():
        codec = _codec_for(value)
    return value if codec is None else {TAG: codec.tag, "value": codec.dump(value)}


def _codecs_possible(value: Any) -> bool:
    # Only objects from outside pydantic's and the standard library's world may need a plugin.
    module = type(value).__module__
    return not module.startswith(("pydantic", "datetime", "uuid", "decimal", "enum", "builtins"))


def encode(value: Any, *, what: str = "value") -> str:
    """JSON text of ``value`` for storage; raises ``NotSerializable`` naming ``what``."""
    try:
        data = pydantic_core.to_jsonable_python(
            _as_codec_value(value), bytes_mode="base64", fallback=_fallback
        )
        raw = pydantic_core.to_json(data, inf_nan_mode="constants")
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
        raise _not_serializable(value, what, exc) from None
    # Rare tokens only need the exact (slower) check when they appear at all.
    if b"NaN" in raw or b"Infinity" in raw or b"\\u0000" in raw:
        _check_storable(data, what)
    return raw.decode()


def input_hash(value: Any, *, what: str = "value") -> str:
    """sha256 hex digest of the canonical JSON of ``value`` (key order and set order ignored)."""
    if value is None:
        return _NULL_HASH
    try:
        canonical = _canonical(value)
        text = json.dumps(
            canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
        raise _not_serializable(value, what, exc) from None
    return hashlib.sha256(text.encode()).hexdigest()


def encode_with_hash(value: Any, *, what: str) -> tuple[str, str]:
    """Canonical JSON text of ``value`` and its hash, for values stored and compared (run input)."""
    try:
        canonical = _canonical(value)
        text = json.dumps(
            canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
        raise _not_serializable(value, what, exc) from None
    if "\\u0000" in text:
        _check_storable(canonical, what)
    return text, hashlib.sha256(text.encode()).hexdigest()


def decode_json(raw: str | bytes | None) -> Any:
    """Plain JSON values (dict, list, str, int, float, bool, None) from stored JSON text."""
    if raw is None:
        return None
    return pydantic_core.from_json(raw)


def decode(raw: str | bytes | None, output_type: Any = None, *, type_tag: str | None = None) -> Any:
    """Stored JSON re-validated into ``output_type`` (or plain JSON values when it is None).

    Values stored by a registered codec come back as their type either way.
    """
    if raw is None:
        raw = "null"
    tagged = (_TAG_BYTES in raw) if isinstance(raw, bytes) else (_TAG_TEXT in raw)
    if output_type is None or output_type is Any:
        return _revive(decode_json(raw), None) if tagged else decode_json(raw)
    codec = _codec_of_type(output_type)
    if codec is not None or tagged:
        value = decode_json(raw)
        if codec is not None and isinstance(value, dict) and value.get(TAG) == codec.tag:
            return codec.load(value["value"], output_type)
        value = _revive(value, None)
        if codec is not None or not _validatable(output_type):
            return value
        return _adapter(output_type).validate_python(value)
    return _adapter(output_type).validate_json(raw)


def _codec_of_type(output_type: Any) -> Codec | None:
    cls = typing.get_origin(output_type) or output_type
    if not isinstance(cls, type):
        return None
    for codec in _codecs.values():
        if issubclass(cls, codec.cls):
            return codec
    if _load_plugins():
        return _codec_of_type(output_type)
    return None


def _validatable(output_type: Any) -> bool:
    try:
        _adapter(output_type)
    except pydantic.PydanticSchemaGenerationError:
        return False
    return True


def _revive(value: Any, output_type: Any) -> Any:
    """Replace every codec-tagged dict in plain JSON values by the object it stands for."""
    if isinstance(value, dict):
        tag = value.get(TAG)
        if isinstance(tag, str) and set(value) == {TAG, "value"}:
            codec = _codecs.get(tag)
            if codec is None and _load_plugins():
                codec = _codecs.get(tag)
            if codec is not None:
                return codec.load(value["value"], output_type)
        return {k: _revive(v, None) for k, v in value.items()}
    if isinstance(value, list):
        return [_revive(v, None) for v in value]
    return value


# -- helpers ----------------------------------------------------------------------------------


_CONFIG = pydantic.ConfigDict(val_json_bytes="base64", ser_json_bytes="base64")


def _build_adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    try:
        return pydantic.TypeAdapter(tp, config=_CONFIG)
    except pydantic.PydanticUserError:
        # Models and dataclasses carry their own config and refuse a second one.
        return pydantic.TypeAdapter(tp)


_cached_adapter = lru_cache(maxsize=512)(_build_adapter)


def _adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    try:
        return _cached_adapter(tp)
    except TypeError:  # an unhashable annotation: build it each time
        return _build_adapter(tp)


def _canonical(value: Any) -> Any:
    """JSON values with sets sorted and non-string keys stringified, for hashing."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not a JSON number")
        return value
    if isinstance(value, Mapping):
        return {_canonical_key(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, set | frozenset):
        items = [_canonical(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True, allow_nan=False))
    return _canonical(
        pydantic_core.to_jsonable_python(value, bytes_mode="base64", fallback=_fallback)
    )


def _canonical_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    converted = pydantic_core.to_jsonable_python(key, bytes_mode="base64")
    return converted if isinstance(converted, str) else json.dumps(converted)


def _check_storable(data: Any, what: str) -> None:
    problem = _find_problem(data, "")
    if problem is not None:
        path, detail = problem
        where = f" at {path}" if path else ""
        raise NotSerializable(f"{what} cannot be stored{where}: {detail}")


def _find_problem(value: Any, path: str) -> tuple[str, str] | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path, f"{value!r} is not a JSON number; replace it with None or a string"
    if isinstance(value, str) and "\x00" in value:
        return path, "the string contains a NUL character (\\x00), which Postgres cannot store"
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _find_problem(v, f"{path}[{k!r}]")
            if found:
                return found
    elif isinstance(value, list | tuple | set | frozenset):
        for i, v in enumerate(value):
            found = _find_problem(v, f"{path}[{i}]")
            if found:
                return found
    return None


def _find_unserializable(value: Any, path: str) -> tuple[str, Any] | None:
    """Path and object of the first value pydantic cannot turn into JSON."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            found = _find_unserializable(v, f"{path}[{k!r}]")
            if found:
                return found
        return None
    if isinstance(value, list | tuple | set | frozenset):
        for i, v in enumerate(value):
            found = _find_unserializable(v, f"{path}[{i}]")
            if found:
                return found
        return None
    try:
        pydantic_core.to_jsonable_python(value, bytes_mode="base64", fallback=_fallback)
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError):
        return path, value
    return None


def _not_serializable(value: Any, what: str, exc: Exception) -> NotSerializable:
    problem = _find_problem(value, "")
    if problem is not None:
        path, detail = problem
        where = f" at {path}" if path else ""
        return NotSerializable(f"{what} cannot be stored{where}: {detail}")
    found = _find_unserializable(value, "")
    if found is not None:
        path, bad = found
        where = f" at {path}" if path else ""
        kind = f"{type(bad).__module__}.{type(bad).__qualname__}"
        return NotSerializable(
            f"{what} is not JSON-serializable{where}: a {kind} object. Return a pydantic model, "
            "dataclass, dict/list of JSON values, datetime, UUID, enum or bytes, or convert it "
            "to one of those before returning it"
        )
    return NotSerializable(f"{what} is not JSON-serializable: {exc}")


def output_type_of(fn: Any) -> Any:
    """The return annotation of ``fn`` (its awaited type for ``async def``), or None.

    Lets ``run.step("plan", make_plan)`` replay a ``Plan`` as a ``Plan`` when ``make_plan`` is
    annotated ``-> Plan``. Lambdas carry no annotations and replay plain JSON values.
    """
    annotations = getattr(fn, "__annotations__", None)
    if not annotations or "return" not in annotations:
        return None
    code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__func__", None), "__code__", None)
    if code is not None:
        cached = _hints_by_code.get(code, _ANY)
        if cached is not _ANY:
            return cached
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:  # unresolvable forward reference: fall back to plain JSON
        hint = None
    if hint is type(None):
        hint = None
    if code is not None:
        _hints_by_code[code] = hint
    return hint


_hints_by_code: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def type_tag(value: Any) -> str | None:
    """``module:qualname`` of a model, dataclass or enum value (None for plain JSON values)."""
    cls = type(value)
    if isinstance(value, pydantic.BaseModel | enum.Enum) or dataclasses.is_dataclass(cls):
        return f"{cls.__module__}:{cls.__qualname__}"
    return None
