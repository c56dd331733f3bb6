"""The rules of runs and steps that do no I/O, shared by the sync and the async engine."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal, TypeVar

from .context import current_step
from .errors import (
    InputMismatch,
    InvalidName,
    LeaseLost,
    RunCancelled,
    StepFailed,
    WorkflowMismatch,
)
from .keys import Kind, Scope, Strand, current_scope
from .owner import Owner, process_is_gone
from .pricing import price_of
from .replay import Checkpoint, ResumeDecision
from .serialization import encode
from .store.records import Claim

__all__ = [
    "Execution",
    "check_event_type",
    "check_limit",
    "check_name",
    "check_run_id",
    "check_step_name",
    "error_payload",
    "new_run_id",
    "settle_claim",
    "usage_params",
]

MAX_RUN_ID_BYTES = 255
MAX_NAME_BYTES = 1000
MAX_ERROR_TEXT = 20_000


def new_run_id() -> str:
    return str(uuid.uuid4())


def check_run_id(run_id: object) -> str:
    if not isinstance(run_id, str):
        raise TypeError(f"run_id must be a str, got {type(run_id).__name__} {run_id!r:.80}")
    return _check_text(run_id, "run_id", MAX_RUN_ID_BYTES)


def check_name(name: object, what: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__} {name!r:.80}")
    return _check_text(name, what, MAX_NAME_BYTES)


@lru_cache(maxsize=4096)
def _valid_step_name(name: str) -> str:
    check_name(name, "step name")
    if "#" in name:
        raise InvalidName(
            f"step name {name!r:.80} contains '#', which Tidebase reserves for the n-th call of a "
            "step (name#2, name#3, …); choose a name without it"
        )
    return name


def check_step_name(name: object) -> str:
    """Names repeat (a step called in a loop): each distinct one is checked once."""
    if type(name) is str:
        return _valid_step_name(name)
    check_name(name, "step name")  # raises the TypeError
    return str(name)


def check_limit(limit: object) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    return limit


# Event types the engine writes itself; user events take another namespace.
RESERVED_EVENT_PREFIXES = ("run.", "step.", "state.", "gate.", "usage.", "budget.")


_T = TypeVar("_T")

LogOf = Callable[[_T], Sequence[tuple[str, Any]]]
"""A call's or step's result → run-log entries (event type, payload) written with its
checkpoint."""


def check_event_type(type: object) -> str:
    check_name(type, "event type")
    assert isinstance(type, str)
    if type.startswith(RESERVED_EVENT_PREFIXES):
        raise InvalidName(
            f"event type {type!r} is in a namespace Tidebase writes itself "
            f"({', '.join(p + '*' for p in RESERVED_EVENT_PREFIXES)}); use your own, "
            "such as 'agent.thought' or 'progress'"
        )
    return type


def _check_text(value: str, what: str, max_bytes: int) -> str:
    if not value.strip():
        raise InvalidName(f"{what} must not be empty or blank")
    if "\x00" in value:
        raise InvalidName(
            f"{what} {value!r:.80} contains a NUL character, which Postgres cannot store"
        )
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise InvalidName(
            f"{what} is {size} bytes long (UTF-8); the limit is {max_bytes}. "
            f"Use a shorter {what} (a hash of a long one works: it only has to be unique)"
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidName(f"{what} {value!r:.80} is not valid Unicode (lone surrogate)") from None
    return value


_SEVERITY = {
    ResumeDecision.FAILED: 3,
    ResumeDecision.MANUAL_REVIEW: 2,
    ResumeDecision.SAFE_REPLAY: 1,
    ResumeDecision.FAILED_RETRYABLE: 0,
}


@dataclass(eq=False)
class Execution:
    """What a worker knows about the run it executes, shared by its contexts and the heartbeat."""

    run_id: str
    workflow_name: str
    owner: Owner
    attempt: int
    lease_seconds: float
    checkpoints: dict[str, Checkpoint] = field(default_factory=dict)
    rows: set[str] = field(default_factory=set)  # step keys with a row in the database
    # Workflow-body operations (state updates, emitted events) earlier attempts did: key → seq.
    ops_done: dict[str, int] = field(default_factory=dict)
    # The log seq this attempt started at, and how far its replay has reached: until the body
    # passes the earlier attempts' work, run.state.get() answers as of that point.
    resume_seq: int = 0
    position: int = 0
    # Set by the heartbeat thread when a renewal shows the run was cancelled or taken over.
    cancelled: bool = False
    cancel_reason: str | None = None
    lost: bool = False
    parked: bool = False  # left 'waiting' at a gate with the lease given back
    # The step failure that ends this attempt, if one does: (exception, step key, decision).
    failure: tuple[BaseException, str, ResumeDecision] | None = None
    # The runs whose budgets govern this one, nearest first; decided at the claim. Empty: no
    # budget anywhere up the tree, and a budget check does no I/O at all.
    budget_holders: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.strand = Strand("workflow body")
        self.root = Scope("", self)
        self.named_scopes: dict[str, Scope] = {}

    @property
    def token(self) -> uuid.UUID:
        return self.owner.token

    def scope(self) -> Scope:
        """The key scope of the code running here: a step body, a branch, or the root."""
        scope = current_scope.get()
        return self.root if scope is None or scope.run is not self else scope

    def next_key(self, name: str, kind: Kind = "step") -> str:
        """The key of the next ``kind`` named ``name`` here: ``name``, then ``name#2`` …"""
        return self.scope().next_key(name, kind)

    def scope_under(self, key: str) -> Scope:
        """The scope of the operations a framework makes under its own unit ``key`` (an agent
        run): one for the whole execution, whichever task the operations run in."""
        scope = self.named_scopes.get(key)
        if scope is None:
            scope = self.named_scopes.setdefault(key, Scope(key + "/", self))
        return scope

    def next_op(self, name: str) -> tuple[bool, str | None]:
        """``(perform, op_key)`` for a state or event operation made here and now.

        Inside a step body the operation is part of a real execution: always performed, no
        key. In the workflow body it gets a key, and is skipped if an earlier attempt did it.
        """
        if current_step.get() is not None:
            return True, None
        key = self.next_key(name, "op")
        seq = self.ops_done.get(key)
        if seq is None:
            return True, key
        self.passed(seq)
        return False, key

    def passed(self, seq: int | None) -> None:
        """The replaying body reached the earlier attempts' log entry ``seq``."""
        if seq is not None and seq > self.position:
            self.position = seq

    @property
    def replaying(self) -> bool:
        return self.position < self.resume_seq

    def note_failure(self, exc: BaseException, key: str, decision: ResumeDecision) -> None:
        """Remember the step failure most restrictive for resuming the run (the run's
        failure_class), nested steps included."""
        if self.failure is None or _SEVERITY[decision] >= _SEVERITY[self.failure[2]]:
            self.failure = (exc, key, decision)

    def failure_of(self, exc: BaseException) -> tuple[str, ResumeDecision] | None:
        if isinstance(exc, StepFailed):
            return exc.step, exc.decision
        if self.failure is not None and self.failure[0] is exc:
            return self.failure[1], self.failure[2]
        return None

    def check_live(self) -> None:
        """Raise at a step boundary if the heartbeat saw a cancel or a takeover."""
        if self.cancelled:
            raise RunCancelled(self.run_id, self.cancel_reason)
        if self.lost:
            raise LeaseLost(self.run_id, "the heartbeat found another owner")


@dataclass(frozen=True, slots=True)
class Settled:
    outcome: Literal["claimed", "completed", "locked"]
    claim: Claim


def settle_claim(
    claim: Claim, *, run_id: str, workflow: str, input_hash: str, check_input: bool
) -> Settled:
    """Turn the claim's answer into: run it, return its result, or wait/refuse."""
    if claim.claimed:
        return Settled("claimed", claim)
    if claim.workflow_name != workflow:
        raise WorkflowMismatch(run_id, workflow, claim.workflow_name or "?")
    if check_input and claim.input_hash != input_hash:
        raise InputMismatch(run_id, None, claim.input_hash or "", input_hash)
    if claim.status == "completed":
        return Settled("completed", claim)
    if claim.status == "cancelled":
        raise RunCancelled(run_id, claim.cancel_reason)
    return Settled("locked", claim)


def holder_is_gone(claim: Claim) -> bool:
    """Is the lease holder a process of this host that no longer exists (or this process,
    whose execution under that lease has finished)?"""
    return claim.owner_token is not None and process_is_gone(
        claim.owner_host, claim.owner_pid, claim.owner_started, claim.owner_token
    )


def error_payload(exc: BaseException) -> dict[str, Any]:
    """What is stored about an exception: enough to debug, bounded in size."""
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_ERROR_TEXT:
        text = text[: MAX_ERROR_TEXT // 2] + "\n…\n" + text[-MAX_ERROR_TEXT // 2 :]
    message = str(exc)
    if len(message) > MAX_ERROR_TEXT:
        message = message[:MAX_ERROR_TEXT] + "…"
    return {
        "type": type(exc).__qualname__,
        "module": type(exc).__module__,
        "message": message.replace("\x00", "\\x00"),  # Postgres text cannot hold NUL
        "traceback": text.replace("\x00", "\\x00"),
    }


@dataclass(frozen=True, slots=True)
class UsageInput:
    """A validated, priced usage row about to be written."""

    run_id: str
    step_name: str | None
    attempt: int
    kind: str
    provider: str | None
    model: str | None
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    cost_usd: Decimal | None
    cost_source: str | None
    label: str | None
    metadata: str | None  # JSON text
    payload: str  # the usage.recorded event, JSON text
    agent: str | None = None
    quantity: Decimal | None = None
    unit: str | None = None


USAGE_FIELDS = frozenset(
    {
        "kind",
        "provider",
        "model",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "cost_usd",
        "label",
        "metadata",
        "agent",
        "quantity",
        "unit",
    }
)


def usage_params(
    *,
    run_id: str,
    attempt: int,
    step: str | None,
    kind: str = "llm",
    provider: str | None = None,
    model: str | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    total_tokens: int | None = None,
    cost_usd: Decimal | float | int | str | None = None,
    label: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    agent: str | None = None,
    quantity: Decimal | float | int | str | None = None,
    unit: str | None = None,
) -> UsageInput:
    """Check a ``usage.record(...)`` call, fill in the total and the price.

    ``agent``: the agent that made the call (a plugin fills in the framework's agent name).
    ``quantity`` of ``unit``: usage counted in something other than tokens (3 "searches").
    """
    check_name(kind, "usage kind")
    if agent is not None:
        check_name(agent, "usage agent")
    for what, text in (("provider", provider), ("model", model), ("label", label), ("unit", unit)):
        if text is not None and not isinstance(text, str):
            raise TypeError(f"usage {what} must be a str or None, got {type(text).__name__}")
    for what, count in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("total_tokens", total_tokens),
    ):
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 0
        ):
            raise ValueError(f"usage {what} must be an int >= 0 or None, got {count!r}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"usage metadata must be a dict, got {type(metadata).__name__}")
    if total_tokens is None and (input_tokens is not None or output_tokens is not None):
        total_tokens = (input_tokens or 0) + (output_tokens or 0)
    amount = None if quantity is None else _amount(quantity, "quantity")
    if cost_usd is None:
        cost, source = price_of(provider, model, input_tokens, output_tokens, dict(metadata or {}))
    else:
        cost, source = _amount(cost_usd, "cost_usd"), "given"
    payload = {
        "kind": kind,
        "provider": provider,
        "model": model,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "total_tokens": total_tokens,
        "cost_usd": None if cost is None else str(cost),
        "step": step,
        "label": label,
    }
    # Absent when not given: usage.recorded events stay as they were.
    if agent is not None:
        payload["agent"] = agent
    if amount is not None:
        payload["quantity"] = str(amount)
    if unit is not None:
        payload["unit"] = unit
    return UsageInput(
        run_id=run_id,
        step_name=step,
        attempt=attempt,
        kind=kind,
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=total_tokens,
        cost_usd=cost,
        cost_source=source,
        label=label,
        metadata=None if metadata is None else encode(metadata, what="usage metadata"),
        payload=encode(payload, what="usage event"),
        agent=agent,
        quantity=amount,
        unit=unit,
    )


def _amount(value: Decimal | float | int | str, what: str) -> Decimal:
    """A usage amount (a cost, a quantity): a finite number >= 0, or its text; else a
    ValueError naming it."""
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except ArithmeticError:
        amount = Decimal("NaN")
    if isinstance(value, bool) or not amount.is_finite() or amount < 0:
        raise ValueError(f"usage {what} must be a finite amount >= 0, got {value!r}")
    return amount
