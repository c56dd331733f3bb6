"""The one place where Python values become stored JSON, and stored JSON becomes values again.

- ``encode`` turns a step output, run result or run input into JSON text for a ``jsonb`` column.
  Anything pydantic can dump works: models, dataclasses, datetimes, UUIDs, enums, bytes
  (base64), plus dicts/lists/tuples/sets of those. Dict key order is kept as the value has it;
  sets (anywhere, also inside models and dataclasses) become lists sorted by their members'
  canonical JSON, so the text does not depend on PYTHONHASHSEED. Refused, with the path inside
  the value and the fix: NaN and ±inf (a replay would return ``null``), NUL in strings
  (Postgres cannot store it), pydantic ``Secret*`` values (they would be stored masked),
  generators, iterators and coroutines (storing would consume them), self-referencing values,
  and objects nothing knows how to dump.
- ``input_hash`` is the sha256 of canonical JSON (sorted keys, ``ensure_ascii=False``, separators
  ``,`` ``:``), the official Tidebase SDKs' hash for plain JSON values: ``{"a": 1, "b": 2}`` and
  ``{"b": 2, "a": 1}`` hash the same, and so do two sets with the same members.
- ``decode`` turns stored JSON back into plain JSON values, or, given a type, re-validates it
  into that type so a replayed step returns what a fresh one returns. ``type_tag`` names the
  concrete class of a model, dataclass or enum value, so that ``decode`` can pick it again out
  of a union or a base-class annotation.
- ``register_codec`` teaches both directions a type pydantic cannot handle (a framework's result
  object, say): it is stored as ``{"$tidebase": tag, "value": ...}`` and loaded back by its
  codec, with or without an output type. Plugins register theirs on import; the engine imports
  the ``tidebase.integrations`` entry points the first time it meets a type or tag it does not
  know.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import json
import math
import types
import typing
import uuid
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pydantic
import pydantic_core
from pydantic_core import core_schema

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
    "type_adapter",
    "type_tag",
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
_plugins_loaded: set[str] = set()


def register_codec(
    cls: type,
    *,
    tag: str,
    dump: Callable[[Any], Any],
    load: Callable[[Any, Any], Any],
) -> None:
    """Store ``cls`` instances with ``dump`` and load them back with ``load`` (see ``Codec``)."""
    _codecs[tag] = Codec(tag, cls, dump, load)
    # What was decided per class may change with a new codec.
    _codec_by_class.clear()
    _route_by_class.clear()


def _find_codec(cls: type) -> Codec | None:
    for codec in _codecs.values():
        if issubclass(cls, codec.cls):
            return codec
    return None


def _codec_for_class(cls: type) -> Codec | None:
    """The codec for instances of ``cls``, looked up once per class."""
    try:
        return _codec_by_class[cls]
    except KeyError:
        pass
    codec = _find_codec(cls)
    if codec is None and _codecs_possible(cls) and _load_plugin(cls.__module__):
        codec = _find_codec(cls)
    _codec_by_class[cls] = codec
    return codec


_codec_by_class: dict[type, Codec | None] = {}


def _load_plugin(name: str) -> bool:
    """Import the integration registered for the framework ``name`` belongs to (a module
    ``pydantic_ai.result`` or a tag ``pydantic_ai.AgentRunResult``): the entry point in group
    ``tidebase.integrations`` named after the framework's import name. Only that one: resuming
    a run must not import every installed framework. True if one was imported now."""
    framework = name.split(".", 1)[0]
    if framework in _plugins_loaded:
        return False
    _plugins_loaded.add(framework)
    from importlib.metadata import entry_points

    loaded = False
    for entry in entry_points(group="tidebase.integrations", name=framework):
        try:
            entry.load()
        except ImportError:  # the framework is not installed: its plugin cannot load
            continue
        loaded = True
    return loaded


def _codecs_possible(cls: type) -> bool:
    # Only objects from outside pydantic's and the standard library's world may need a plugin.
    return not cls.__module__.startswith(
        ("pydantic", "datetime", "uuid", "decimal", "enum", "builtins")
    )


def _fallback(value: Any) -> Any:
    """pydantic's hook for values it does not know: a registered codec, or an error."""
    codec = _codec_for_class(type(value))
    if codec is None:
        raise TypeError(f"Unable to serialize unknown type: {type(value)}")
    return {TAG: codec.tag, "value": codec.dump(value)}


# -- encode and hash --------------------------------------------------------------------------


def encode(value: Any, *, what: str = "value") -> str:
    """JSON text of ``value`` for storage; raises ``NotSerializable`` naming ``what``.

    Dict key order is kept; sets become sorted lists (see the module docstring).
    """
    if value is None:  # a step or run returning nothing: the most common value, ~3 µs saved
        return "null"
    route = _route(value)
    raw = None
    if route:
        try:
            raw = pydantic_core.to_json(
                value, by_alias=True, bytes_mode="base64", inf_nan_mode="constants"
            )
        except (pydantic_core.PydanticSerializationError, TypeError, ValueError):
            raw = None  # the walk below names the problem
    else:
        dumped = _set_fields_dump(value)
        if dumped is not None:
            data, route = dumped
            raw = pydantic_core.to_json(data, inf_nan_mode="constants")
    if raw is None:
        return pydantic_core.to_json(_tree(value, what, storing=True)).decode()
    # Rare tokens only need the exact (slower) check when they appear at all.
    if (
        b"NaN" in raw
        or b"Infinity" in raw
        or b"\\u0000" in raw
        or (route == _CHECKED and b"null" in raw)
    ):
        _tree(value, what, storing=True)
    return raw.decode()


def input_hash(value: Any, *, what: str = "value") -> str:
    """sha256 hex digest of the canonical JSON of ``value`` (key order and set order ignored).

    For plain JSON values it equals the official Tidebase SDKs' input hash.
    """
    if value is None:
        return _NULL_HASH
    route = _route(value)
    try:
        if route == _NATIVE:
            return _sha256(_canonical_text(value))
        if route:
            data = pydantic_core.to_jsonable_python(value, by_alias=True, bytes_mode="base64")
        else:
            data, route = _set_fields_dump(value) or (None, _WALK)
        if route:
            text = _canonical_text(data)
            if route != _CHECKED or "null" not in text:
                return _sha256(text)
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError):
        pass  # the walk below names the problem
    return _sha256(_canonical_text(_tree(value, what, storing=False)))


def encode_with_hash(value: Any, *, what: str) -> tuple[str, str]:
    """``encode(value)`` and ``input_hash(value)``, for values both stored and compared."""
    return encode(value, what=what), input_hash(value, what=what)


def _canonical_text(data: Any) -> str:
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Routes: how a value can be turned into JSON. The fast routes hand the value to pydantic_core
# as it is; the walk is for values holding anything that needs a look (sets, secrets,
# generators, codec types, cycles, objects pydantic would dump by guessing).
# _CHECKED: as _PYDANTIC, but a model's float field that is NaN or ±inf is written as null
# (pydantic's default ser_json_inf_nan), so a null in the dump calls for the walk's check.
_WALK, _CHECKED, _PYDANTIC, _NATIVE = 0, 1, 2, 3
_JSON_LEAVES = frozenset({str, int, float, bool, type(None)})
_PYDANTIC_LEAVES = frozenset(
    {
        bytes,
        datetime.datetime,
        datetime.date,
        datetime.time,
        datetime.timedelta,
        uuid.UUID,
        decimal.Decimal,
    }
)
# Values with more containers than this take the walk, which also finds cycles (the fast check
# does not track them, it only stops).
_FAST_BUDGET = 10_000


def _route(value: Any) -> int:
    """``_NATIVE`` for plain JSON values, ``_PYDANTIC`` (or ``_CHECKED``) when pydantic's JSON
    dump of ``value`` is exactly the stored form, ``_WALK`` otherwise. On the hot path: a
    loop, not recursion."""
    leaves = _JSON_LEAVES
    route = _NATIVE
    stack = [value]
    pop, push = stack.pop, stack.append
    budget = _FAST_BUDGET
    while stack:
        item = pop()
        cls = type(item)
        if cls is dict:
            budget -= 1
            if budget < 0:
                return _WALK
            for key, member in item.items():
                if type(key) is not str:
                    return _WALK
                if type(member) not in leaves:
                    push(member)
        elif cls is list or cls is tuple:
            budget -= 1
            if budget < 0:
                return _WALK
            for member in item:
                if type(member) not in leaves:
                    push(member)
        elif cls in leaves:
            pass
        elif cls in _PYDANTIC_LEAVES:
            route = min(route, _PYDANTIC)
        else:
            plan = _route_by_class.get(cls)
            if plan is None:
                plan = _route_by_class[cls] = _plan_for_class(cls)
            if plan is _PLAN_PYDANTIC:
                route = min(route, _PYDANTIC)
            elif plan is _PLAN_FLOATS:
                route = _CHECKED
            elif plan is _PLAN_ENUM:
                if type(item.value) not in leaves:
                    return _WALK
                route = min(route, _PYDANTIC)
            elif type(plan) is tuple:  # a stdlib dataclass: pydantic guesses from its fields
                budget -= 1
                if budget < 0:
                    return _WALK
                route = min(route, _PYDANTIC)
                for name in plan:
                    push(getattr(item, name))
            else:
                return _WALK
    return route


_PLAN_PYDANTIC = "pydantic"
_PLAN_FLOATS = "pydantic with floats"
_PLAN_ENUM = "enum"
_PLAN_WALK = "walk"
_route_by_class: dict[type, str | tuple[str, ...] | _SetFields] = {}


@dataclass(frozen=True, slots=True)
class _SetFields:
    """A model plain but for some top-level fields that are sets of strings or ints (the
    common ``tags: set[str]``): its JSON dump with those lists sorted is the stored form."""

    keys: tuple[str, ...]  # where they are in the dump (serialization aliases)
    route: int  # _CHECKED when it has float fields, else _PYDANTIC


def _set_fields_dump(value: Any) -> tuple[Any, int] | None:
    """The stored form of a ``_SetFields`` model as JSON values, and its route (None for
    other values)."""
    plan = _route_by_class.get(type(value))
    if type(plan) is not _SetFields:
        return None
    data = pydantic_core.to_jsonable_python(value, by_alias=True, bytes_mode="base64")
    for key in plan.keys:
        members = data.get(key)
        if type(members) is list:
            members.sort(key=_member_key)
    return data, plan.route


def _set_field_keys(schema: Mapping[str, Any]) -> tuple[str, ...] | None:
    """Aliases of a model's set-of-str/int fields when all its other fields are plain."""
    defs: dict[str, Mapping[str, Any]] = {}
    seen: set[str] = set()
    if schema["type"] == "definitions":
        for definition in schema["definitions"]:
            defs[definition["ref"]] = definition
        schema = schema["schema"]
    if "serialization" in schema or schema["type"] not in ("model", "dataclass"):
        return None
    if (schema.get("config") or {}).get("extra_fields_behavior") == "allow":
        return None
    if "ref" in schema:
        seen.add(schema["ref"])
    body = schema["schema"]
    if "serialization" in body or body.get("extra_behavior") == "allow" or "extras_schema" in body:
        return None
    if body["type"] == "model-fields":
        fields = list(body["fields"].items())
    elif body["type"] == "dataclass-args":
        fields = [(f["name"], f) for f in body["fields"]]
    else:
        return None
    if not all(
        _schema_is_plain(c["return_schema"], defs, seen) for c in body.get("computed_fields") or ()
    ):
        return None
    keys = []
    for name, field in fields:
        inner = field["schema"]
        while inner["type"] in ("default", "nullable") and "serialization" not in inner:
            inner = inner["schema"]
        items = inner.get("items_schema") or {}
        if (
            inner["type"] in ("set", "frozenset")
            and "serialization" not in inner
            and items.get("type") in ("str", "int")
            and "serialization" not in items
            and "serialization" not in field
        ):
            keys.append(field.get("serialization_alias") or name)
        elif not _schema_is_plain(field, defs, seen):
            return None
    return tuple(keys) if keys else None


def _plan_for_class(cls: type) -> str | tuple[str, ...] | _SetFields:
    """How instances of ``cls`` can be encoded: decided once per class."""
    if _codec_for_class(cls) is not None:
        return _PLAN_WALK
    if issubclass(cls, enum.Enum):
        return _PLAN_ENUM
    schema = getattr(cls, "__pydantic_core_schema__", None) if _is_pydantic_class(cls) else None
    if schema is not None:
        try:
            plain = _schema_is_plain(schema, {}, set())
        except Exception:  # a schema not built yet (forward references) or of a new kind
            plain = False
        if plain:
            return _PLAN_FLOATS if _mentions_float(schema) else _PLAN_PYDANTIC
        try:
            keys = _set_field_keys(schema)
        except Exception:
            keys = None
        if keys is None:
            return _PLAN_WALK
        return _SetFields(keys, _CHECKED if _mentions_float(schema) else _PYDANTIC)

    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    return _PLAN_WALK


def _is_pydantic_class(cls: type) -> bool:
    return issubclass(cls, pydantic.BaseModel) or pydantic.dataclasses.is_pydantic_dataclass(cls)


def _mentions_float(node: Any) -> bool:
    if isinstance(node, dict):
        return node.get("type") == "float" or any(_mentions_float(v) for v in node.values())
    if isinstance(node, list | tuple):
        return any(_mentions_float(v) for v in node)
    return False


_PLAIN_SCHEMAS = frozenset(
    {
        "str",
        "int",
        "float",
        "bool",
        "none",
        "bytes",
        "date",
        "datetime",
        "time",
        "timedelta",
        "uuid",
        "decimal",
        "url",
        "multi-host-url",
    }
)
# Schemas whose serialization is that of their inner "schema".
_WRAPPER_SCHEMAS = frozenset(
    {
        "model-field",
        "dataclass-field",
        "typed-dict-field",
        "nullable",
        "default",
        "function-after",
        "function-before",
        "function-wrap",
        "custom-error",
        "dataclass",
    }
)


def _schema_is_plain(
    schema: Mapping[str, Any], defs: dict[str, Mapping[str, Any]], seen: set[str]
) -> bool:
    """True when values of this pydantic core schema can only dump to JSON without sets,
    secrets, generators or anything dumped by a function or by guessing (``Any``, extras)."""
    ref = schema.get("ref")
    if ref is not None:
        if ref in seen:
            return True  # a recursive model: judged where it started
        seen.add(ref)
        defs[ref] = schema
    if "serialization" in schema:  # custom serializers, Secret* among them
        return False
    kind = schema["type"]
    if kind in _PLAIN_SCHEMAS:
        return True
    if kind in _WRAPPER_SCHEMAS:
        return _schema_is_plain(schema["schema"], defs, seen)
    if kind == "definitions":
        for definition in schema["definitions"]:
            defs[definition["ref"]] = definition
        return _schema_is_plain(schema["schema"], defs, seen)
    if kind == "definition-ref":
        target = schema["schema_ref"]
        if target in seen:
            return True
        return target in defs and _schema_is_plain(defs[target], defs, seen)
    if kind == "model":
        config = schema.get("config") or {}
        return config.get("extra_fields_behavior") != "allow" and _schema_is_plain(
            schema["schema"], defs, seen
        )
    if kind in ("model-fields", "typed-dict"):
        if schema.get("extra_behavior") == "allow" or "extras_schema" in schema:
            return False
        fields = list(schema["fields"].values())
        fields += [c["return_schema"] for c in schema.get("computed_fields") or ()]
        return all(_schema_is_plain(f, defs, seen) for f in fields)
    if kind == "dataclass-args":
        fields = list(schema["fields"])
        fields += [c["return_schema"] for c in schema.get("computed_fields") or ()]
        return all(_schema_is_plain(f, defs, seen) for f in fields)
    if kind == "list":
        return "items_schema" in schema and _schema_is_plain(schema["items_schema"], defs, seen)
    if kind == "tuple":
        return all(_schema_is_plain(s, defs, seen) for s in schema["items_schema"])
    if kind == "dict":
        keys, values = schema.get("keys_schema"), schema.get("values_schema")
        return (
            keys is not None
            and values is not None
            and keys["type"] == "str"
            and "serialization" not in keys
            and _schema_is_plain(values, defs, seen)
        )
    if kind == "union":
        return all(
            _schema_is_plain(c[0] if isinstance(c, tuple) else c, defs, seen)
            for c in schema["choices"]
        )
    if kind == "tagged-union":
        return all(_schema_is_plain(c, defs, seen) for c in schema["choices"].values())
    if kind == "lax-or-strict":
        return _schema_is_plain(schema["lax_schema"], defs, seen) and _schema_is_plain(
            schema["strict_schema"], defs, seen
        )
    if kind == "json-or-python":
        return _schema_is_plain(schema["json_schema"], defs, seen) and _schema_is_plain(
            schema["python_schema"], defs, seen
        )
    if kind == "literal":
        return all(type(e) in _JSON_LEAVES for e in schema["expected"])
    if kind == "enum":
        return all(type(m.value) in _JSON_LEAVES for m in schema["members"])
    return False  # any, set, frozenset, is-instance, generator, function-plain, ...


# -- the walk ---------------------------------------------------------------------------------


class _Refusal(Exception):
    """Raised inside the walk; each level on the way out adds its step of the path."""

    def __init__(self, detail: str, *, unknown: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.unknown = unknown  # an object nothing knows how to dump
        self.path: list[str] = []  # innermost first

    def error(self, what: str) -> NotSerializable:
        where = f" at {''.join(reversed(self.path))}" if self.path else ""
        if self.unknown:
            return NotSerializable(f"{what} is not JSON-serializable{where}: {self.detail}")
        return NotSerializable(f"{what} cannot be stored{where}: {self.detail}")


_SECRETS = (pydantic.SecretStr, pydantic.SecretBytes, pydantic.Secret)
_CONSUMABLE = (Iterator, AsyncIterator, Awaitable)
# pydantic's own dump in python mode: models and dataclasses become dicts, while sets stay
# sets, secrets stay secret objects and generators stay unconsumed, so the walk can see them.
_PYTHON_DUMP = pydantic_core.SchemaSerializer(core_schema.any_schema())
_SET_MEMBER = "{member}"


def _tree(value: Any, what: str, *, storing: bool) -> Any:
    """Plain JSON values standing for ``value`` (sets sorted, codec types tagged), or
    ``NotSerializable`` naming ``what``, the path inside the value and the fix."""
    try:
        return _walk(value, storing, set())
    except _Refusal as refusal:
        raise refusal.error(what) from None
    except RecursionError:
        raise NotSerializable(
            f"{what} is nested too deeply to store; flatten it or store a reference to it"
        ) from None


def _walk(value: Any, storing: bool, parents: set[int]) -> Any:
    """``value`` as plain JSON values; ``parents`` holds the ids of the containers and objects
    being walked through, to tell a cycle from a value that is merely shared."""
    cls = type(value)
    if cls is str:
        if storing and "\x00" in value:
            raise _Refusal(
                "the string contains a NUL character (\\x00), which Postgres cannot store; "
                "remove it or encode the text (base64, say)"
            )
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise _Refusal(
                    "the string contains a lone surrogate (half of a UTF-16 pair), which is "
                    "not text; decode the bytes it came from with errors='replace'"
                ) from None
        return value
    if cls is int or cls is bool or value is None:
        return value
    if cls is float:
        if not math.isfinite(value):
            raise _Refusal(f"{value!r} is not a JSON number; replace it with None or a string")
        return value
    if cls is dict or cls is list or cls is tuple:
        return _walk_container(value, storing, parents)
    codec = _codec_for_class(cls)
    if codec is not None:
        return {TAG: codec.tag, "value": _walk(codec.dump(value), storing, parents)}
    if isinstance(value, _SECRETS):
        raise _Refusal(
            f"a pydantic {cls.__name__} would be stored masked ('**********') and replay the "
            "mask; store a reference to the secret (its name in your vault or settings), or "
            "exclude the field from the model's dump"
        )
    if isinstance(value, _CONSUMABLE):
        # pydantic's python-mode dump wraps a generator found in a model, unconsumed.
        kind = "generator" if cls.__name__ == "SerializationIterator" else _kind(value)
        raise _Refusal(
            f"a {kind} is consumed or awaited only once, so a replay could not "
            "return it; return a list (list(...)) or the awaited result instead"
        )
    if isinstance(value, enum.Enum):
        return _walk(value.value, storing, parents)
    if isinstance(value, str):
        return _walk(str(value), storing, parents)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _walk(float(value), storing, parents)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return _walk_container(value, storing, parents)
    if _is_pydantic_class(cls) or dataclasses.is_dataclass(cls):
        return _walk_object(value, storing, parents)
    try:
        dumped = pydantic_core.to_jsonable_python(value, bytes_mode="base64", fallback=_fallback)
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError):
        raise _Refusal(
            f"a {_kind(value)} object. Return a pydantic model, dataclass, dict/list of JSON "
            "values, datetime, UUID, enum or bytes, or convert it to one of those before "
            "returning it",
            unknown=True,
        ) from None
    return _walk(dumped, storing, parents)


def _walk_container(value: Any, storing: bool, parents: set[int]) -> Any:
    key = id(value)
    if key in parents:
        raise _Refusal(
            f"the {type(value).__name__} contains itself; store an acyclic copy (replace the "
            "back-reference by an id, say)"
        )
    parents.add(key)
    result: Any
    if isinstance(value, Mapping):
        result = {}
        for k, item in value.items():
            try:
                result[_walk(_key(k), storing, parents)] = _walk(item, storing, parents)
            except _Refusal as refusal:
                refusal.path.append(f"[{k!r}]")
                raise
    elif isinstance(value, list | tuple):
        result = []
        for i, item in enumerate(value):
            try:
                result.append(_walk(item, storing, parents))
            except _Refusal as refusal:
                refusal.path.append(f"[{i}]")
                raise
    else:  # a set: its members in an order that does not depend on PYTHONHASHSEED
        result = []
        for item in value:
            try:
                result.append(_walk(item, storing, parents))
            except _Refusal as refusal:
                refusal.path.append(_SET_MEMBER)
                raise
        result.sort(key=_member_key)
    parents.discard(key)
    return result


def _member_key(member: Any) -> str:
    # Sorted keys and ASCII escapes, as the hash of top-level sets has always sorted them
    # (json.dumps' own results for strings and ints, without its per-call overhead).
    cls = type(member)
    if cls is str:
        return _ascii_json_string(member)
    if cls is int:
        return int.__repr__(member)
    return json.dumps(member, sort_keys=True)


_ascii_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def _walk_object(value: Any, storing: bool, parents: set[int]) -> Any:
    """A model or dataclass, as pydantic dumps it to JSON (aliases, serializers, computed
    fields, exclusions and JSON config apply), with its sets sorted.

    pydantic's JSON dump hides what the walk must see (a set is already a list in iteration
    order, a secret is already masked, a generator already consumed), so the python-mode dump,
    which keeps them as they are, is looked at first and then guides the JSON dump.
    """
    key = id(value)
    if key in parents:
        raise _Refusal(_refers_to_itself(value))
    parents.add(key)
    try:
        # No warnings: a value of an unexpected type is the walk's to judge.
        python = _PYTHON_DUMP.to_python(value, mode="python", by_alias=True, warnings=False)
    except ValueError as exc:
        if "ircular" not in str(exc):
            raise _Refusal(f"pydantic could not dump the {type(value).__name__}: {exc}") from None
        refusal = _Refusal(_refers_to_itself(value))
        refusal.path = _cycle_path(value, set()) or []
        raise refusal from None
    _inspect(python)
    try:
        dumped = pydantic_core.to_jsonable_python(
            value, by_alias=True, bytes_mode="base64", fallback=_fallback
        )
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError) as exc:
        _walk(python, storing, parents)  # names the object it could not dump, with its path
        raise _Refusal(f"pydantic could not dump the {type(value).__name__}: {exc}") from None
    result = _settle(dumped, python, storing, parents)
    parents.discard(key)
    return result


def _refers_to_itself(value: Any) -> str:
    return (
        f"the {type(value).__name__} refers to itself; store an acyclic copy (replace the "
        "back-reference by an id, say)"
    )


def _inspect(python: Any) -> None:
    """Refuse what a python-mode dump shows and its JSON dump would hide: secrets, generators
    (wrapped, unconsumed) and NaN/±inf (null in a model's JSON dump). Objects pydantic passed
    through are not entered."""
    cls = type(python)
    if cls is str or cls is int or cls is bool or python is None:
        return
    if cls is dict:
        for k, item in python.items():
            try:
                _inspect(item)
            except _Refusal as refusal:
                refusal.path.append(f"[{k!r}]")
                raise
    elif cls is list or cls is tuple:
        for i, item in enumerate(python):
            try:
                _inspect(item)
            except _Refusal as refusal:
                refusal.path.append(f"[{i}]")
                raise
    elif cls is set or cls is frozenset:
        for item in python:
            try:
                _inspect(item)
            except _Refusal as refusal:
                refusal.path.append(_SET_MEMBER)
                raise
    elif cls is float or isinstance(python, (*_SECRETS, *_CONSUMABLE)):
        _walk(python, False, set())  # raises the refusal, if any


def _settle(dumped: Any, python: Any, storing: bool, parents: set[int]) -> Any:
    """The JSON dump ``dumped`` with each list that was a set in ``python`` (the same value's
    python-mode dump) sorted, and checked for what cannot be stored."""
    kind = type(python)
    if (kind is set or kind is frozenset) and type(dumped) is list:
        if any(isinstance(m, set | frozenset | tuple | list | dict) for m in python):
            # Members with sets of their own: only the python-mode members show them.
            members = [_walk(m, storing, parents) for m in python]
        else:
            members = [_walk(m, storing, parents) for m in dumped]
        members.sort(key=_member_key)
        return members
    if type(dumped) is dict and kind is dict:
        by_key = {_key(k): v for k, v in python.items()}
        result = {}
        for k, item in dumped.items():
            try:
                result[_walk(k, storing, parents)] = _settle(item, by_key.get(k), storing, parents)
            except _Refusal as refusal:
                refusal.path.append(f"[{k!r}]")
                raise
        return result
    if type(dumped) is list and (kind is list or kind is tuple) and len(dumped) == len(python):
        items = []
        for i, (item, guide) in enumerate(zip(dumped, python, strict=True)):
            try:
                items.append(_settle(item, guide, storing, parents))
            except _Refusal as refusal:
                refusal.path.append(f"[{i}]")
                raise
        return items
    # Nothing (more) to guide by, e.g. where a serializer changed the shape: check it as it is.
    return _walk(dumped, storing, parents)


def _cycle_path(value: Any, parents: set[int]) -> list[str] | None:
    """Where ``value`` refers back to itself (innermost step first), read from the objects'
    attributes; only used to word an error."""
    if isinstance(value, str | bytes | int | float) or value is None:
        return None
    key = id(value)
    if key in parents:
        return []
    parents.add(key)
    steps: list[tuple[str, Any]]
    if isinstance(value, pydantic.BaseModel):
        steps = [(f"[{n!r}]", getattr(value, n, None)) for n in type(value).model_fields]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        steps = [(f"[{f.name!r}]", getattr(value, f.name)) for f in dataclasses.fields(value)]
    elif isinstance(value, Mapping):
        steps = [(f"[{k!r}]", v) for k, v in value.items()]
    elif isinstance(value, list | tuple):
        steps = [(f"[{i}]", v) for i, v in enumerate(value)]
    elif isinstance(value, set | frozenset):
        steps = [(_SET_MEMBER, v) for v in value]
    else:
        steps = []
    for step, item in steps:
        found = _cycle_path(item, parents)
        if found is not None:
            return [*found, step]
    parents.discard(key)
    return None


def _key(key: Any) -> str:
    """A dict key as pydantic writes it: strings as they are, others as their JSON text."""
    if isinstance(key, str):
        return str(key)
    converted = pydantic_core.to_jsonable_python(key, bytes_mode="base64")
    return converted if isinstance(converted, str) else json.dumps(converted)


def _kind(value: Any) -> str:
    cls = type(value)
    return f"{cls.__module__}.{cls.__qualname__}"


# -- decode -----------------------------------------------------------------------------------


def type_tag(value: Any) -> str | None:
    """``"module:qualname"`` of the class of a model, dataclass or enum member; None otherwise.

    Stored beside an output, it lets ``decode`` return the concrete class again when the
    annotation is a union or a base class.
    """
    cls = type(value)
    if cls in _JSON_LEAVES or cls is dict or cls is list:
        return None
    if isinstance(value, pydantic.BaseModel | enum.Enum) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        return _class_tag(cls)
    return None


def _class_tag(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def decode_json(raw: str | bytes | None) -> Any:
    """Plain JSON values (dict, list, str, int, float, bool, None) from stored JSON text."""
    if raw is None:
        return None
    return pydantic_core.from_json(raw)


def decode(raw: str | bytes | None, output_type: Any = None, *, type_tag: str | None = None) -> Any:
    """Stored JSON re-validated into ``output_type`` (or plain JSON values when it is None).

    With ``type_tag`` (see ``type_tag()``) naming a member of a union ``output_type`` or a
    subclass of a class ``output_type``, the value is validated into that class. Values stored
    by a registered codec come back as their type either way.
    """
    if raw is None:
        raw = "null"
    tagged = (_TAG_BYTES in raw) if isinstance(raw, bytes) else (_TAG_TEXT in raw)
    if output_type is None or output_type is Any:
        return _revive(decode_json(raw), None) if tagged else decode_json(raw)
    if type_tag is not None:
        output_type = _tagged_type(output_type, type_tag)
    codec = _codec_of_type(output_type)
    if codec is not None or tagged:
        value = decode_json(raw)
        if codec is not None and isinstance(value, dict) and value.get(TAG) == codec.tag:
            return codec.load(value["value"], output_type)
        value = _revive(value, None)
        if codec is not None or not _validatable(output_type):
            return value
        return type_adapter(output_type).validate_python(value)
    return type_adapter(output_type).validate_json(raw)


def _tagged_type(output_type: Any, tag: str) -> Any:
    """The member of a union, or subclass of a class, that ``tag`` names, else ``output_type``.

    Classes are only looked up among those the annotation already reaches: a name read from
    storage is never imported.
    """
    for candidate in _union_members(output_type):
        if not isinstance(candidate, type):
            continue
        if _class_tag(candidate) == tag:
            return candidate
        found = _subclass_named(candidate, tag, set())
        if found is not None:
            return found
    return output_type


def _union_members(tp: Any) -> list[Any]:
    while typing.get_origin(tp) is typing.Annotated:
        tp = tp.__origin__
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(tp) for m in _union_members(arg)]
    return [tp]


def _subclass_named(cls: type, tag: str, seen: set[type]) -> type | None:
    try:
        subclasses: list[type] = type.__subclasses__(cls)
    except TypeError:
        return None
    for sub in subclasses:
        if sub in seen:
            continue
        seen.add(sub)
        if _class_tag(sub) == tag:
            return sub
        found = _subclass_named(sub, tag, seen)
        if found is not None:
            return found
    return None


def _codec_of_type(output_type: Any) -> Codec | None:
    cls = typing.get_origin(output_type) or output_type
    if not isinstance(cls, type):
        return None
    for codec in _codecs.values():
        if issubclass(cls, codec.cls):
            return codec
    if _codecs_possible(cls) and _load_plugin(cls.__module__):
        return _codec_of_type(output_type)
    return None


def _validatable(output_type: Any) -> bool:
    try:
        type_adapter(output_type)
    except pydantic.PydanticSchemaGenerationError:
        return False
    return True


def _revive(value: Any, output_type: Any) -> Any:
    """Replace every codec-tagged dict in plain JSON values by the object it stands for."""
    if isinstance(value, dict):
        tag = value.get(TAG)
        if isinstance(tag, str) and set(value) == {TAG, "value"}:
            codec = _codecs.get(tag)
            if codec is None and _load_plugin(tag):
                codec = _codecs.get(tag)
            if codec is not None:
                return codec.load(value["value"], output_type)
        return {k: _revive(v, None) for k, v in value.items()}
    if isinstance(value, list):
        return [_revive(v, None) for v in value]
    return value


_CONFIG = pydantic.ConfigDict(val_json_bytes="base64", ser_json_bytes="base64")


def _build_adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    try:
        return pydantic.TypeAdapter(tp, config=_CONFIG)
    except pydantic.PydanticUserError:
        # Models and dataclasses carry their own config and refuse a second one.
        return pydantic.TypeAdapter(tp)


_cached_adapter = lru_cache(maxsize=512)(_build_adapter)


def type_adapter(tp: Any) -> pydantic.TypeAdapter[Any]:
    """pydantic's adapter of ``tp``, built once per type (a dataclass's takes ~0.3 ms to build):
    bytes as base64, except in models and dataclasses, which keep their own config."""
    try:
        return _cached_adapter(tp)
    except TypeError:  # an unhashable annotation: build it each time
        return _build_adapter(tp)


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
