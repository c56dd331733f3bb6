"""Input hashes of model requests: the divergence check of a replayed model call.

The hash covers what the response depends on (the model asked, instructions, input items,
settings, the tools and handoffs offered, the output type), normalized so that equal requests
hash equally across processes: item ids and ``None`` fields are dropped, callables count by
name, and the prompt cache key the SDK generates for each ``Runner.run`` is left out.
"""

from __future__ import annotations

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
) -> str:
    return input_hash(
        {
            # A recorded answer replayed for another model would be silently wrong.
            "model": model,
            "instructions": system_instructions,
            "input": input if isinstance(input, str) else [_item(i) for i in input],
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
