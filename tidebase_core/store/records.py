"""Plain records the store hands to the engine (shared by the sync and the async store)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import TidebaseError
from ..models import StateVersion
from ..owner import Owner
from ..serialization import decode_json, encode, encode_with_hash
from .adapters import ExactJson, JsonText

__all__ = ["Claim", "ClaimRequest", "FenceState", "GateRow", "Probe", "StateNote", "state_version"]


@dataclass(frozen=True, slots=True)
class ClaimRequest:
    """What a claim asks for: the lease of run ``run_id`` for ``owner``, and the run's values
    if the claim creates it (``input``, ``metadata``, ``budget``: JSON text). ``parent``: the
    run whose child this is, whose budgets a new child draws from too."""

    run_id: str
    workflow: str
    input: str | None
    input_hash: str
    check_input: bool
    metadata: str | None
    owner: Owner
    lease: float
    budget: str | None = None
    parent: str | None = None

    @classmethod
    def new(
        cls,
        *,
        run_id: str,
        workflow: str,
        input: Any,
        metadata: Mapping[str, Any] | None,
        lease: float,
        budget: str | None = None,
        parent: str | None = None,
    ) -> ClaimRequest:
        """From the caller's values, checked and encoded, for a new owner (``Owner.new``: live
        until ``let_go(request.owner.token)``). ``input=None`` resumes an existing run with its
        stored input instead of checking it."""
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        input_text, input_hash = encode_with_hash(input, what=f"input of run {run_id!r}")
        metadata_text = None if metadata is None else encode(metadata, what="run metadata")
        return cls(
            run_id=run_id,
            workflow=workflow,
            input=input_text,
            input_hash=input_hash,
            check_input=input is not None,
            metadata=metadata_text,
            owner=Owner.new(),  # live before the claim: this process never voids its lease
            lease=lease,
            budget=budget,
            parent=parent,
        )

    def params(self, void_token: uuid.UUID | None = None) -> dict[str, Any]:
        """The claim statement's parameters (``void_token``: a dead owner's lease to ignore)."""
        return {
            **self.values(),
            "check_input": self.check_input,
            "want_input": not self.check_input,
            "token": self.owner.token,
            "lease": self.lease,
            "void_token": void_token,
            "write_id": uuid.uuid4(),
            "parent": self.parent,
        }

    def values(self) -> dict[str, Any]:
        """The run row's values if this creates it (the claim's, and a new run's written in
        one statement), and its owner (``FIND_NEW_RUN`` finds that statement's row by it)."""
        return {
            "run_id": self.run_id,
            "workflow": self.workflow,
            "input": None if self.input is None else ExactJson(self.input),
            "input_hash": self.input_hash,
            "metadata": None if self.metadata is None else JsonText(self.metadata),
            "host": self.owner.host,
            "pid": self.owner.pid,
            "started": self.owner.started,
            "budget": None if self.budget is None else JsonText(self.budget),
            "holders": None if self.budget is None else [self.run_id],
        }

    def taken(self) -> TidebaseError:
        """A new run's generated id found in the database (never expected: uuid4)."""
        return TidebaseError(
            f"run {self.run_id!r}: a new run's generated id is already in the database, so it "
            "was not recorded; this should never happen (uuid4). Start the run again, and "
            "report this"
        )


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


IMPORTANCE = ("transient", "normal", "checkpoint", "milestone")


@dataclass(frozen=True, slots=True)
class StateNote:
    """What a state write says about the version it makes (the protocol's ``reason``,
    ``importance``, ``metadata``, ``createdBy``); ``metadata``: JSON text."""

    reason: str | None = None
    importance: str | None = None
    metadata: str | None = None
    created_by: str | None = None

    @classmethod
    def of(
        cls,
        *,
        reason: str | None = None,
        importance: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_by: str | None = None,
    ) -> StateNote:
        """Checked: the texts are str, ``importance`` one of ``IMPORTANCE``, ``metadata`` a
        dict of JSON values."""
        for what, text in (("reason", reason), ("created_by", created_by)):
            if text is not None and not isinstance(text, str):
                raise TypeError(f"state {what} must be a str or None, got {type(text).__name__}")
        if importance is not None and importance not in IMPORTANCE:
            raise ValueError(
                f"state importance must be one of {', '.join(IMPORTANCE)}, got {importance!r}"
            )
        if metadata is not None and not isinstance(metadata, Mapping):
            raise TypeError(f"state metadata must be a dict, got {type(metadata).__name__}")
        return cls(
            reason,
            importance,
            None if metadata is None else encode(metadata, what="state metadata"),
            created_by,
        )

    def params(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "importance": self.importance,
            "metadata": None if self.metadata is None else JsonText(self.metadata),
            "created_by": self.created_by,
        }


NO_NOTE = StateNote()


def state_version(row: Any) -> StateVersion:
    """A state version from a row of ``queries.STATE_VERSION_COLUMNS``."""
    return StateVersion(
        version=row[0],
        value=decode_json(row[1]),
        labels=list(row[2]),
        created_at=row[3],
        reason=row[4],
        importance=row[5],
        metadata=decode_json(row[6]),
        created_by=row[7],
    )
