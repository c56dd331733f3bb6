"""The usage-ledger rows of a model call, from what LangChain reports about it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from .in_progress import ModelCall

__all__ = ["usage_rows"]


def usage_rows(messages: Iterable[BaseMessage], call: ModelCall | None) -> list[dict[str, Any]]:
    """``usage.record`` arguments for each AI message that reports usage.

    The provider and model come from the message (``response_metadata``, LangChain's standard
    ``model_provider``/``model_name``: what the provider answered with), else from the model's
    own parameters seen when the call started.
    """
    rows: list[dict[str, Any]] = []
    for message in messages:
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        if not usage:
            continue
        meta = message.response_metadata or {}
        details = usage.get("input_token_details") or {}
        extra = {
            "cache_read_tokens": details.get("cache_read"),
            "cache_write_tokens": details.get("cache_creation"),
            "reasoning_tokens": (usage.get("output_token_details") or {}).get("reasoning"),
        }
        rows.append(
            {
                "kind": "llm",
                "provider": _text(meta.get("model_provider")) or (call.provider if call else None),
                "model": _text(meta.get("model_name")) or (call.model if call else None),
                "input_tokens": usage.get("input_tokens"),
                "output_tokens": usage.get("output_tokens"),
                "total_tokens": usage.get("total_tokens"),
                "metadata": {k: v for k, v in extra.items() if v is not None} or None,
            }
        )
    return rows


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
