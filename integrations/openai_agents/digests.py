"""Input hashes of model requests: the divergence check of a replayed model call.

The hash covers what the response depends on (the model asked, instructions, input items,
settings, the tools and handoffs offered, the output type), normalized so that equal requests
hash equally across processes: item ids and ``None`` fields are dropped, callables count by
name, and the prompt cache key the SDK generates for each ``Runner.run`` is left out.

The input is hashed item by item: the SDK sends the whole conversation with every request, as
fresh copies, so each item's hash is kept by its exact JSON (pydantic-core's dump, ~0.5 µs an
item) and a request only normalizes the items it has not seen. Along an agent run (its key
scope, ``chain``) a request starts from the previous one: when its items begin with that
request's items (compared by value, which costs a fraction of their JSON), only the items added
since are hashed, so the cost stays flat as the conversation grows (at 200 messages a request
had cost 0.55 ms, growing).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic_core

from tidebase_core.plugin import input_hash

__all__ = ["digest_of", "model_request_digest"]

_VOLATILE_SETTINGS = ("retry", "prompt_cache_key")


def model_request_digest(
    model: str,
    system_instructions: str | None,
    input: str | Sequence[Any],
    model_settings: Any,
    tools: Sequence[Any],
    output_schema: Any,
    handoffs: Sequence[Any],
    options: Mapping[str, Any],
    chain: object | None = None,
) -> str:
    """``chain``: the agent run the request belongs to (its key scope), or None."""
    return input_hash(
        {
            # A recorded answer replayed for another model would be silently wrong.
            "model": model,
            "instructions": system_instructions,
            "input": input if isinstance(input, str) else _items_digest(input, chain),
            "settings": _settings(model_settings),
            "tools": [getattr(tool, "name", type(tool).__name__) for tool in tools],
            "handoffs": [getattr(h, "tool_name", None) for h in handoffs],
            "output": None if output_schema is None else output_schema.name(),
            "options": {
                name: _plain(options.get(name))
                for name in ("previous_response_id", "conversation_id", "prompt")
            },
        }
    )


# An item's exact JSON (key order kept) → the hash of its normalized form, oldest first;
# bounded by the JSON's total size.
_item_digests: dict[bytes, str] = {}
_cached_bytes = 0
_CACHE_BYTES = 32 * 1024 * 1024


class _Chained:
    """A request's items, and the hash of their hashes so far (to be continued)."""

    __slots__ = ("hashed", "items")

    def __init__(self, items: list[Any], hashed: hashlib._Hash) -> None:
        self.items = items
        self.hashed = hashed


# Per agent run (its key scope): its last request's items (the copies the SDK made for that
# request, which nothing changes after it was sent) and the hash state after them.
_chains: weakref.WeakKeyDictionary[Any, _Chained] = weakref.WeakKeyDictionary()


def _items_digest(items: Sequence[Any], chain: object | None = None) -> str:
    # One hash of the items' hashes: canonical JSON of hundreds of them costs more.
    items = list(items)
    previous = _chains.get(chain) if chain is not None else None
    start = 0
    hashed: hashlib._Hash
    if previous is not None and _starts_with(items, previous.items):
        hashed = previous.hashed.copy()
        start = len(previous.items)
    else:
        hashed = hashlib.sha256()
    for item in items[start:]:
        hashed.update(_item_digest(item).encode())
    if chain is not None:
        _chains[chain] = _Chained(items, hashed.copy())
    return "items:" + hashed.hexdigest()


def _starts_with(items: list[Any], prefix: list[Any]) -> bool:
    """Equal values hash equally: an item equal to the one hashed before has its hash."""
    if len(items) < len(prefix):
        return False
    try:
        # List equality compares item by item in C, identity first (half the cost of a loop).
        return items[: len(prefix)] == prefix
    except Exception:  # an item whose comparison fails: hash it again
        return False


def _item_digest(item: Any) -> str:
    global _cached_bytes
    try:
        raw = pydantic_core.to_json(item, by_alias=True, bytes_mode="base64", fallback=_by_name)
    except (pydantic_core.PydanticSerializationError, TypeError, ValueError):
        return input_hash(_item(item), what="model request item")
    digest = _item_digests.get(raw)
    if digest is None:
        # The same JSON is the same normalized item (it is made from that JSON's values).
        digest = input_hash(_item(item), what="model request item")
        _item_digests[raw] = digest
        _cached_bytes += len(raw)
        while _cached_bytes > _CACHE_BYTES and _item_digests:
            try:
                oldest = next(iter(_item_digests))
            except RuntimeError:  # another thread's insert: evict on its call instead
                break
            if _item_digests.pop(oldest, None) is not None:
                _cached_bytes -= len(oldest)
    return digest


def _item(item: Any) -> Any:
    plain = _plain(item)
    if isinstance(plain, dict):
        plain.pop("id", None)
    return plain


def _settings(model_settings: Any) -> Any:
    plain = _plain(model_settings)
    if not isinstance(plain, dict):
        return plain
    for name in _VOLATILE_SETTINGS:
        plain.pop(name, None)
    for extra in ("extra_args", "extra_body"):
        if isinstance(plain.get(extra), dict):
            plain[extra].pop("prompt_cache_key", None)
    return plain


def _plain(value: Any) -> Any:
    """JSON values without ``None`` fields; objects JSON cannot hold count by their name."""
    return _drop_none(
        pydantic_core.to_jsonable_python(
            value, by_alias=True, bytes_mode="base64", fallback=_by_name
        )
    )


def _by_name(value: Any) -> str:
    return f"<{getattr(value, '__qualname__', type(value).__qualname__)}>"


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def digest_of(value: Any) -> str:
    """The input hash of any SDK value (session items, a guardrail's input)."""
    return input_hash(_plain(value))
