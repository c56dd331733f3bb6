"""The cost of a model call, from genai-prices (a price table maintained by Pydantic's team).

Optional: ``pip install 'tidebase[prices]'`` (the framework extras include it). Without it,
usage rows keep their tokens and carry no computed cost.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

__all__ = ["price_of"]

log = logging.getLogger("tidebase.pricing")
_warned = False


def price_of(
    provider: str | None,
    model: str | None,
    input_tokens: int | None,
    output_tokens: int | None,
    details: dict[str, Any] | None = None,
) -> tuple[Decimal | None, str | None]:
    """``(cost in USD, source)`` for a call, or ``(None, None)`` when no price is known."""
    global _warned
    if not model or (input_tokens is None and output_tokens is None):
        return None, None
    try:
        import genai_prices
    except ImportError:
        if not _warned:
            _warned = True
            log.warning(
                "genai-prices is not installed, so usage rows get no cost; "
                "pip install 'tidebase[prices]' to compute costs from token counts"
            )
        return None, None
    extra = details or {}
    usage = genai_prices.Usage(
        input_tokens=input_tokens or 0,
        output_tokens=output_tokens or 0,
        cache_read_tokens=_int(extra.get("cache_read_tokens")),
        cache_write_tokens=_int(extra.get("cache_write_tokens")),
    )
    for provider_id in [provider, None] if provider else [None]:
        try:
            calc = genai_prices.calc_price(usage, model, provider_id=provider_id)
        except LookupError:
            continue
        return (
            calc.total_price,
            f"genai-prices {genai_prices.__version__}: {calc.provider.id}/{calc.model.id}",
        )
    return None, None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
