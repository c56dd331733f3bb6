"""The async face of Tidebase: ``AsyncTidebase`` and ``AsyncRunContext``.

Same rules as the sync API (the sync engine is generated from this one); step functions may be
sync or async, and ``await run.step(...)`` awaits a coroutine a step function returns.
"""

from tidebase_core import AsyncRunContext, AsyncRuns, AsyncTidebase, Budget, BudgetSpend
from tidebase_core._async.sessions import AsyncRunSession

__all__ = [
    "AsyncRunContext",
    "AsyncRunSession",
    "AsyncRuns",
    "AsyncTidebase",
    "Budget",
    "BudgetSpend",
]
