"""Tidebase's engine: durable runs and steps in Postgres. Imports no agent framework.

Most users import ``tidebase`` (the public face) rather than this package.
"""

from ._async.client import AsyncRuns, AsyncTidebase
from ._async.context import AsyncRunContext
from ._sync.client import Runs, Tidebase
from ._sync.context import RunContext
from .budgets import Budget, BudgetSpend
from .context import current_run, run_id
from .models import Event, RunInfo, RunStatus, StepInfo, StepStatus
from .replay import ResumeDecision
from .retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "AsyncRunContext",
    "AsyncRuns",
    "AsyncTidebase",
    "Budget",
    "BudgetSpend",
    "Event",
    "ResumeDecision",
    "RetryPolicy",
    "RunContext",
    "RunInfo",
    "RunStatus",
    "Runs",
    "StepInfo",
    "StepStatus",
    "Tidebase",
    "current_run",
    "run_id",
]
