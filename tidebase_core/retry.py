"""How long to wait before trying a failed step (or a lost connection) again."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass

__all__ = [
    "MAX_BACKOFF_SECONDS",
    "NO_RETRIES",
    "RetryPolicy",
    "backoff_seconds",
    "retry_base_seconds",
]

# A queued run's next attempt after a failed one (and, over the HTTP protocol, after a lapsed
# lease): base·2^(attempt−1), capped.
MAX_BACKOFF_SECONDS = 300.0


def retry_base_seconds() -> float:
    """5 s, or ``TIDEBASE_RETRY_BASE_SECONDS`` (tests use a fraction of a second)."""
    raw = os.environ.get("TIDEBASE_RETRY_BASE_SECONDS")
    if not raw:
        return 5.0
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"TIDEBASE_RETRY_BASE_SECONDS must be a number of seconds, got {raw!r}"
        ) from None
    return max(value, 0.0)


def backoff_seconds(attempt: int, base: float | None = None) -> float:
    """Delay before retry after failed attempt ``attempt``: base·2^(attempt−1), capped at 5 min."""
    base = retry_base_seconds() if base is None else base
    return float(min(base * 2 ** max(attempt - 1, 0), MAX_BACKOFF_SECONDS))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter (the AWS architecture blog's recommendation).

    ``retries=3`` on a step means ``RetryPolicy(max_retries=3)``: up to three more tries, waiting
    a random time up to ``initial_delay * multiplier**n`` (capped at ``max_delay``) before
    try ``n + 1``.
    """

    max_retries: int = 0
    initial_delay: float = 0.5
    max_delay: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError(
                "initial_delay and max_delay must be >= 0 and multiplier >= 1, got "
                f"{self.initial_delay}, {self.max_delay}, {self.multiplier}"
            )

    @classmethod
    def of(cls, retries: int | RetryPolicy, step: str) -> RetryPolicy:
        if isinstance(retries, RetryPolicy):
            return retries
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise TypeError(
                f"step {step!r}: retries must be an int >= 0 or a RetryPolicy, got {retries!r}"
            )
        return cls(max_retries=retries) if retries else NO_RETRIES

    def delay(self, retry_number: int) -> float:
        """Seconds to wait before retry ``retry_number`` (0-based)."""
        ceiling = min(self.max_delay, self.initial_delay * self.multiplier**retry_number)
        return random.uniform(0, ceiling)


NO_RETRIES = RetryPolicy()
