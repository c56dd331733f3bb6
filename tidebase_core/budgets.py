"""Budgets: caps on a run tree's recorded spend (DESIGN §9, guarantee 13).

Pure rules, no I/O: what a ``Budget`` accepts, and what a tree's spend means against it. The
store sums the ledger; the run context asks before each step declared ``spends=True``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, field_serializer, field_validator, model_validator

__all__ = ["WARN_AT", "Budget", "BudgetSpend", "BudgetStatus", "exceeded", "near_cap"]

WARN_AT = Decimal("0.8")
"""A ``budget.warning`` event is emitted once per budget when any cap is this far spent."""

_DIMENSIONS = ("usd", "tokens", "input_tokens", "output_tokens")


class Budget(BaseModel):
    """Caps on the recorded spend of a run and its child runs; give at least one.

    ``usd`` counts priced calls only (``usage.record`` with a known model or ``cost_usd``);
    ``tokens`` counts ``total_tokens``. A run tree stops before a step declared
    ``spends=True`` (or a plugin's model call) once its spend reaches any cap.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    usd: Decimal | None = None
    tokens: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None

    def __init__(
        self,
        usd: Decimal | float | None = None,
        tokens: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> None:
        # Spelled out so that type checkers accept a float or int for usd (stored as Decimal).
        super().__init__(
            usd=usd, tokens=tokens, input_tokens=input_tokens, output_tokens=output_tokens
        )

    @field_validator("usd", mode="before")
    @classmethod
    def _check_usd(cls, value: Any) -> Any:
        if value is None:
            return None
        # A str or bool would be read as a number by pydantic's lax mode: refuse them plainly.
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ValueError(
                f"Budget usd must be a number of dollars (int, float or Decimal) or None, "
                f"got {type(value).__name__} {value!r:.40}"
            )
        amount = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        if not amount.is_finite() or amount < 0:
            raise ValueError(f"Budget usd must be a finite amount >= 0, got {value!r}")
        return amount

    @field_validator("tokens", "input_tokens", "output_tokens", mode="before")
    @classmethod
    def _check_count(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"a Budget token cap must be an int >= 0 or None, got {type(value).__name__} "
                f"{value!r:.40}"
            )
        if value < 0:
            raise ValueError(f"a Budget token cap must be an int >= 0, got {value}")
        return value

    @model_validator(mode="after")
    def _at_least_one(self) -> Budget:
        if all(getattr(self, d) is None for d in _DIMENSIONS):
            raise ValueError(
                "Budget needs at least one cap: usd=, tokens=, input_tokens= or output_tokens= "
                "(to remove a run's budget, pass None instead of a Budget)"
            )
        return self

    @field_serializer("usd")
    def _usd_text(self, usd: Decimal | None) -> str | None:
        return None if usd is None else str(usd)  # exact: a float would round the cap

    def caps(self) -> dict[str, Decimal | int]:
        """The caps that are set, by dimension."""
        return {d: v for d in _DIMENSIONS if (v := getattr(self, d)) is not None}

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), sort_keys=True)

    @classmethod
    def stored(cls, value: dict[str, Any]) -> Budget:
        """A budget as ``to_json`` stored it (usd as exact text)."""
        caps = dict(value)
        if isinstance(caps.get("usd"), str):
            caps["usd"] = Decimal(caps["usd"])
        return cls.model_validate(caps)

    @classmethod
    def coerce(cls, value: object, what: str = "budget") -> Budget | None:
        """``value`` if it is a Budget (or None); a dict of caps is accepted too."""
        if value is None or isinstance(value, Budget):
            return value
        if isinstance(value, dict):
            unknown = set(value) - set(_DIMENSIONS)
            if unknown:
                raise TypeError(
                    f"{what}: unknown caps {sorted(unknown)}; a Budget has {', '.join(_DIMENSIONS)}"
                )
            return cls.model_validate(value)
        raise TypeError(
            f"{what} must be a tidebase.Budget (e.g. Budget(usd=5.0, tokens=200_000)) or None, "
            f"got {type(value).__name__}"
        )

    def __str__(self) -> str:
        return ", ".join(f"{d}={_show(v)}" for d, v in self.caps().items())


class BudgetSpend(BaseModel):
    """What a run tree has recorded in the ledger (every attempt, crashed ones included)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    calls: int = 0
    usd: Decimal = Decimal(0)
    tokens: int = 0
    input_tokens: int = 0
    output_tokens: int = 0

    def __str__(self) -> str:
        return (
            f"usd={_show(self.usd)}, tokens={self.tokens}, input_tokens={self.input_tokens}, "
            f"output_tokens={self.output_tokens} over {self.calls} calls"
        )


class BudgetStatus(BaseModel):
    """One budget that governs a run, and the spend of the tree under the run that holds it."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    run_id: str
    """The run that holds the budget (the run itself or an ancestor)."""
    budget: Budget
    spend: BudgetSpend
    warned: bool = False
    """This check emitted the budget's ``budget.warning`` event."""


def exceeded(budget: Budget, spend: BudgetSpend) -> list[str]:
    """The dimensions whose cap the spend has reached (at or past it)."""
    return [d for d, cap in budget.caps().items() if getattr(spend, d) >= cap]


def near_cap(budget: Budget, spend: BudgetSpend) -> list[str]:
    """The dimensions at or past ``WARN_AT`` of their cap."""
    return [d for d, cap in budget.caps().items() if getattr(spend, d) >= WARN_AT * cap]


def _show(value: Decimal | int) -> str:
    return format(value.normalize(), "f") if isinstance(value, Decimal) else str(value)
