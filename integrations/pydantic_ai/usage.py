"""The ledger row of a model request that really executed, read from its recorded response.

The row is written in the same statement as the request's checkpoint, so a replayed request
(which does not execute) records nothing, and a crash cannot leave one without the other. The
cost Pydantic AI reports (``RequestUsage.cost``: its own price, or the gateway's) wins; without
one the ledger prices the tokens with genai-prices.
"""

from __future__ import annotations

from typing import Any

from tidebase_core.operations import Usage

__all__ = ["usage_rows"]

# Columns of their own in the ledger, or priced by it: not repeated in the row's metadata.
_COLUMNS = frozenset({"input_tokens", "output_tokens", "cost"})


def usage_rows(payload: Any, agent: str | None = None) -> list[Usage]:
    """The ledger rows of the model request whose encoded response (Pydantic AI's JSON of a
    ``ModelResponse``, read as it is: no validation on the hot path) is ``payload``."""
    if isinstance(payload, dict) and "parts" not in payload:
        payload = payload["response"]  # a streamed request before Pydantic AI 2.60
    usage: dict[str, Any] = payload.get("usage") or {}
    # Cache, reasoning and audio token counts (and provider-specific details), when non-zero.
    details = {name: _nonzero(v) for name, v in usage.items() if name not in _COLUMNS}
    details = {name: value for name, value in details.items() if value}
    return [
        Usage(
            provider=payload.get("provider_name"),
            model=payload.get("model_name"),
            input_tokens=usage.get("input_tokens"),
            output_tokens=usage.get("output_tokens"),
            cost_usd=usage.get("cost"),
            metadata=details or None,
            agent=agent,
        )
    ]


def _nonzero(value: Any) -> Any:
    return {k: v for k, v in value.items() if v} if isinstance(value, dict) else value
