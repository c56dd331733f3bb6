"""The budget check a run makes before it spends (DESIGN §9, guarantee 13).

This is the async source; ``tidebase_core/_sync/budget.py`` is generated from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..budgets import BudgetStatus, exceeded
from ..errors import BudgetExceeded

if TYPE_CHECKING:
    from .context import AsyncRunContext

__all__ = ["check_budget"]


async def check_budget(run: AsyncRunContext, step: str | None = None) -> list[BudgetStatus]:
    """Every budget governing ``run`` with its tree's spend (one query); raises
    ``BudgetExceeded`` naming the nearest budget whose spend reached a cap."""
    ex = run._execution
    holders = ex.budget_holders
    if not holders:
        return []
    statuses = await run._db.budget_statuses(holders, run_id=ex.run_id, check=True)
    statuses.sort(key=lambda s: holders.index(s.run_id))
    for status in statuses:
        caps = exceeded(status.budget, status.spend)
        if caps:
            raise BudgetExceeded(ex.run_id, status.run_id, status.budget, status.spend, caps, step)
    return statuses
