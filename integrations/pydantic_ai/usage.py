"""The ledger row of a model request that really executed, read from its recorded response.

The row is written in the same statement as the request's checkpoint, so a replayed request
(which does not execute) records nothing, and a crash cannot leave one without the other. The
cost is left to the ledger, which prices the tokens with genai-prices.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import TypeAdapter

from pydantic_ai.messages import ModelResponse

__all__ = ["usage_rows"]

_RESPONSE = TypeAdapter(ModelResponse)
# Columns of their own in the ledger, or priced by it: not repeated in the row's metadata.
_COLUMNS = frozenset({"input_tokens", "output_tokens", "cost"})


def usage_rows(payload: Any) -> list[dict[str, Any]]:
    """``usage.record`` arguments for the model request whose encoded response is ``payload``."""
    if isinstance(payload, dict) and "parts" not in payload:
        payload = payload["response"]  # a streamed request before Pydantic AI 2.60
    response = _RESPONSE.validate_python(payload)
    usage = response.usage
    # Cache, reasoning and audio token counts (and provider-specific details), when non-zero.
    details = {
        field.name: _nonzero(getattr(usage, field.name))
        for field in dataclasses.fields(usage)
        if field.name not in _COLUMNS
    }
    details = {name: value for name, value in details.items() if value}
    return [
        {
            "kind": "llm",
            "provider": response.provider_name,
            "model": response.model_name,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "metadata": details or None,
        }
    ]


def _nonzero(value: Any) -> Any:
    return {k: v for k, v in value.items() if v} if isinstance(value, dict) else value
