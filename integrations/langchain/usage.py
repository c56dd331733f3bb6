"""The ledger rows of a model call, from what LangChain reports about it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from tidebase_core.operations import Usage

__all__ = ["usage_rows"]


def usage_rows(
    messages: Iterable[BaseMessage],
    provider: str | None = None,
    model: str | None = None,
    agent: str | None = None,
) -> list[Usage]:
    """One row for each AI message that reports usage.

    The provider and model come from the message (``response_metadata``, LangChain's standard
    ``model_provider``/``model_name``: what the provider answered with), else from the model's
    own parameters (``provider``, ``model``); ``agent`` names the agent that made the call. A
    cost the provider or gateway reported wins over the price table:
    ``usage_metadata["total_cost"]`` (0 for an answer from the user's own LLM cache) or
    ``cost`` in the response's token usage (OpenRouter and similar gateways).
    """
    rows: list[Usage] = []
    for message in messages:
        usage: Mapping[str, Any] | None = (
            message.usage_metadata if isinstance(message, AIMessage) else None
        )
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
            Usage(
                provider=_text(meta.get("model_provider")) or provider,
                model=_text(meta.get("model_name")) or model,
                input_tokens=usage.get("input_tokens"),
                output_tokens=usage.get("output_tokens"),
                total_tokens=usage.get("total_tokens"),
                cost_usd=_cost(usage, meta),
                metadata={k: v for k, v in extra.items() if v is not None} or None,
                agent=agent,
            )
        )
    return rows


def _cost(usage: Mapping[str, Any], meta: Mapping[str, Any]) -> float | None:
    token_usage = meta.get("token_usage")
    for value in (
        usage.get("total_cost"),
        meta.get("cost"),
        token_usage.get("cost") if isinstance(token_usage, Mapping) else None,
    ):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
