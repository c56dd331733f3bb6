"""Plain records the store hands to the engine (shared by the sync and the async store)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

__all__ = ["Claim", "FenceState", "GateRow", "Probe"]


@dataclass(frozen=True, slots=True)
class Claim:
    """The outcome of trying to take a run's lease (one round trip).

    ``claimed`` is True when this worker now owns the run. Otherwise the remaining fields
    describe the run as it is, so the engine can say why (completed, locked, mismatched …).
    """

    claimed: bool
    attempt: int
    created: bool = False
    input: bytes | None = None
    last_seq: int = 0
    """The run's log position when this attempt began (what earlier attempts wrote is before)."""
    workflow_name: str | None = None
    status: str | None = None
    input_hash: str | None = None
    result: bytes | None = None
    result_type: str | None = None
    owner_token: uuid.UUID | None = None
    owner_host: str | None = None
    owner_pid: int | None = None
    owner_started: str | None = None
    lease_expires_in: float | None = None
    cancel_reason: str | None = None
    budget_holders: tuple[str, ...] = ()
    """The runs whose budgets govern this one, nearest first (empty: no budget applies)."""

    @classmethod
    def won(cls, row: tuple[Any, ...]) -> Claim:
        attempt, created, input, last_seq, holders = row[:5]  # a last column: NOTIFY's result
        return cls(True, attempt, created, input, last_seq, budget_holders=tuple(holders or ()))

    @classmethod
    def refused(cls, row: tuple[Any, ...]) -> Claim:
        attempt, *rest = row
        return cls(False, attempt, False, None, 0, *rest)


@dataclass(frozen=True, slots=True)
class FenceState:
    """Why a fenced write matched nothing: the run's status and current owner."""

    status: str
    owner_token: uuid.UUID | None
    cancel_reason: str | None


@dataclass(frozen=True, slots=True)
class GateRow:
    """A gate as stored, with its run's status (for a worker waiting on it)."""

    name: str | None  # None: the run exists but has no such gate
    prompt: str | None
    data: Any
    status: str | None
    actor: str | None
    payload: Any
    token: str | None
    created_at: Any
    resolved_at: Any
    run_id: str | None
    run_status: str | None = None
    run_owner: uuid.UUID | None = None
    cancel_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """Why a new connection could not be made: the database is away, or it is full (it
    answers, but every connection slot it has is taken)."""

    why: str
    full: bool
