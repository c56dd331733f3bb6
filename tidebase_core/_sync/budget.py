"""The budget check a run makes before it spends (DESIGN §9, guarantee 13).

Generated from ``tidebase_core/_async/budget.py`` by ``tools/generate_sync.py``: edit that file, not this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..budgets import BudgetStatus, exceeded
from ..errors import BudgetExceeded

if TYPE_CHECKING:
    from .context import RunContext

__all__ = ["check_budget"]


def check_budget(run: RunContext, step: str | None = None) -> list[BudgetStatus]:
    """Every budget governing ``run`` with its tree's spend (one query); raises
    ``BudgetExceeded`` naming the nearest budget whose spend reached a cap."""
    ex = run._execution
    holders = ex.budget_holders
    if not holders:
        return []
    statuses = run._db.budget_statuses(holders, run_id=ex.run_id, check=True)
    statuses.sort(key=lambda s: holders.index(s.run_id))
    for status in statuses:
        caps = exceeded(status.budget, status.spend)
        if caps:
            raise BudgetExceeded(ex.run_id, status.run_id, status.budget, status.spend, caps, step)
    return statuses
