"""What introspection returns: runs, steps and events as pydantic models."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from .replay import ResumeDecision

__all__ = ["Event", "RunInfo", "RunStatus", "StepInfo", "StepStatus"]


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
    model_config = ConfigDict(frozen=True)


class RunInfo(_Model):
    run_id: str
    workflow_name: str
    status: RunStatus
    input: Any = None
    result: Any = None
    error: dict[str, Any] | None = None
    attempt: int
    failure_class: ResumeDecision | None = None
    metadata: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    lease_expires_at: datetime | None = None
    """When the current owner's lease lapses (None when no worker holds the run)."""


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
