"""What introspection returns: runs, steps and events as pydantic models."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from .budgets import Budget, BudgetSpend
from .replay import ResumeDecision

__all__ = [
    "AgentUsage",
    "AttemptOutcome",
    "AttemptUsage",
    "Event",
    "GateDecision",
    "GateInfo",
    "GateStatus",
    "ModelUsage",
    "RunInfo",
    "RunStatus",
    "StateVersion",
    "StepInfo",
    "StepStatus",
    "StepUsage",
    "UsageRecord",
    "UsageSummary",
]


class RunStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    RUNNING = "running"  # intent recorded, body not finished (only for steps unsafe to repeat)
    COMPLETED = "completed"
    FAILED = "failed"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, defer_build=True)


class RunInfo(_Model):
    run_id: str
    workflow_name: str
    status: RunStatus
    input: Any = None
    result: Any = None
    error: dict[str, Any] | None = None
    attempt: int
    failure_class: ResumeDecision | Literal["max_retries", "budget"] | None = None
    """The resume decision that failed the run, ``max_retries`` (a queued run out of
    attempts), or ``budget`` (stopped by its budget: ``tide.runs.set_budget``, then re-invoke)."""
    metadata: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    lease_expires_at: datetime | None = None
    """When the current owner's lease lapses (None when no worker holds the run)."""
    budget_holders: list[str] = []
    """The runs whose budgets govern this one, nearest first: itself if it has a budget, then
    the ancestors that have one (fixed when the run is created; ``set_budget`` adds to it)."""
    budget: Budget | None = None
    """The budget governing the run (its own, or the nearest ancestor's); ``runs.get`` only."""
    budget_run_id: str | None = None
    """The run holding ``budget`` (this run or an ancestor); ``runs.get`` only."""
    spend: BudgetSpend | None = None
    """What the run tree of ``budget_run_id`` has recorded against ``budget``; ``runs.get``
    only."""


class StepInfo(_Model):
    name: str
    """The step key: the step name, ``name#n`` for its n-th call, or a content key."""
    status: StepStatus
    input_hash: str | None
    output: Any = None
    error: dict[str, Any] | None = None
    attempt: int
    """The run attempt that wrote this checkpoint."""
    resume_decision: ResumeDecision | None
    seq: int | None = None
    """Place of the ``step.completed`` entry in the run's event log."""
    idempotency_key: str | None = None
    updated_at: datetime


class Event(_Model):
    seq: int
    type: str
    payload: Any = None
    created_at: datetime


class StateVersion(_Model):
    """One version of a run's live state; ``labels`` make it a named snapshot."""

    version: int
    value: Any = None
    labels: list[str] = []
    created_at: datetime
    reason: str | None = None
    importance: str | None = None
    """``transient``, ``normal``, ``checkpoint`` or ``milestone``; None: not given."""
    metadata: dict[str, Any] | None = None
    created_by: str | None = None


class GateStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class GateDecision(_Model):
    """What ``run.gate(...)`` returns once someone decided."""

    name: str
    """The gate's key in its run: its name, ``name#n`` for the n-th gate of that name."""
    decision: GateStatus
    actor: str | None = None
    payload: Any = None
    resolved_at: datetime | None = None

    @property
    def approved(self) -> bool:
        return self.decision is GateStatus.APPROVED

    @property
    def status(self) -> GateStatus:
        return self.decision


class GateInfo(_Model):
    run_id: str
    name: str
    prompt: str
    data: Any = None
    status: GateStatus
    actor: str | None = None
    payload: Any = None
    token: str
    """The resolve token: give it to whoever may decide from outside (an approval link)."""
    created_at: datetime
    resolved_at: datetime | None = None


class UsageRecord(_Model):
    run_id: str
    kind: str
    provider: str | None = None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    cost_usd: Decimal | None = None
    cost_source: str | None = None
    """``"given"`` when the caller passed the cost, else where the price came from."""
    step_name: str | None = None
    attempt: int
    label: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime
    agent: str | None = None
    """The agent that made the call (plugins record the framework's agent name)."""
    quantity: Decimal | None = None
    unit: str | None = None
    """Usage counted in something other than tokens: ``quantity`` of ``unit``."""


class ModelUsage(_Model):
    provider: str | None
    model: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Decimal
    priced_calls: int
    """Calls with a known cost; ``cost_usd`` covers only these."""


class _Totals(_Model):
    calls: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Decimal
    priced_calls: int
    """Calls with a known cost; ``cost_usd`` covers only these."""


class AgentUsage(_Totals):
    agent: str | None
    """None: calls recorded without an agent (``usage.record`` outside a plugin)."""


AttemptOutcome = Literal["completed", "failed", "parked", "cancelled", "running", "crashed"]


class AttemptUsage(_Totals):
    run_id: str
    attempt: int
    outcome: AttemptOutcome
    """How the attempt ended; ``crashed``: it ended without recording an end (the process was
    killed, or its lease lapsed). Its spend was real and counts against a budget."""

    @property
    def crashed(self) -> bool:
        return self.outcome == "crashed"


class StepUsage(_Totals):
    run_id: str
    step: str | None
    """The step key; None: recorded in the workflow body, outside any step."""


class UsageSummary(_Model):
    calls: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    cost_usd: Decimal
    by_model: list[ModelUsage]
    by_agent: list[AgentUsage] = []
    by_attempt: list[AttemptUsage] = []
    """Per run attempt (only in a summary of one run or run tree)."""
    by_step: list[StepUsage] = []
    """Per step key, in the order they first spent (only for one run or run tree)."""
