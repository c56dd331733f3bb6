"""The replay contract: what happens to a step when its run is invoked again.

Two pure functions, used by the sync and the async engine alike:

- ``resume_decision`` is the table that classifies a step by what it declared (side effects,
  idempotency key, ``replay=``, retries left). The decision is stored on the step and, when the
  step fails the run, on the run.
- ``plan_step`` looks at the checkpoint a step left in an earlier attempt and says: replay it,
  execute it, or refuse (input drift, or a step parked for manual review).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from .errors import InputMismatch, StepFailed
from .retry import NO_RETRIES, RetryPolicy

__all__ = [
    "Checkpoint",
    "ReplayMode",
    "ResumeDecision",
    "StepPolicy",
    "plan_step",
    "resume_decision",
]

ReplayMode = Literal["auto", "manual", "never"]
_REPLAY_MODES = ("auto", "manual", "never")


class ResumeDecision(StrEnum):
    SAFE_REPLAY = "safe_replay"
    """Re-invoking the run executes the step again."""
    MANUAL_REVIEW = "manual_review"
    """The step may have taken effect; it stays parked until someone reviews it."""
    FAILED = "failed"
    """The step must never run twice (``replay="never"``); the run cannot pass it by itself."""
    FAILED_RETRYABLE = "failed_retryable"
    """The step failed and has retries left; it will be tried again."""


@dataclass(frozen=True, slots=True)
class StepPolicy:
    """What a step declared about itself."""

    side_effects: tuple[str, ...] = ()
    idempotency_key: str | None = None
    replay: ReplayMode | None = None
    retry: RetryPolicy = NO_RETRIES
    spends: bool = False
    """The step spends (model calls): it checks the run tree's budget before it executes."""

    @classmethod
    def build(
        cls,
        step: str,
        *,
        side_effects: Sequence[str] | None,
        idempotency_key: str | None,
        replay: ReplayMode | None,
        retries: int | RetryPolicy,
        spends: bool = False,
    ) -> StepPolicy:
        if side_effects is None:
            effects: tuple[str, ...] = ()
        elif isinstance(side_effects, str) or not all(isinstance(e, str) for e in side_effects):
            raise TypeError(
                f"step {step!r}: side_effects must be a list of strings such as "
                f"['email'] or ['read'], got {side_effects!r}"
            )
        else:
            effects = tuple(side_effects)
        if idempotency_key is not None and not isinstance(idempotency_key, str):
            raise TypeError(
                f"step {step!r}: idempotency_key must be a string, got "
                f"{type(idempotency_key).__name__}"
            )
        if replay is not None and replay not in _REPLAY_MODES:
            raise ValueError(
                f"step {step!r}: replay must be one of 'auto', 'manual', 'never' or None, "
                f"got {replay!r}"
            )
        if not isinstance(spends, bool):
            raise TypeError(f"step {step!r}: spends must be True or False, got {spends!r}")
        return cls(effects, idempotency_key or None, replay, RetryPolicy.of(retries, step), spends)

    @property
    def external(self) -> bool:
        """Does the step act on the world (anything but reading)?"""
        return any(effect != "read" for effect in self.side_effects)

    decision: ResumeDecision = field(init=False, repr=False, compare=False)
    """What resuming after this step failed or was interrupted does (no retries left)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "decision", resume_decision(self))


def resume_decision(policy: StepPolicy, *, retries_left: int = 0) -> ResumeDecision:
    """The resume contract, in one place (DESIGN §4)."""
    if retries_left > 0:
        return ResumeDecision.FAILED_RETRYABLE
    if policy.replay == "manual":
        return ResumeDecision.MANUAL_REVIEW
    if policy.replay == "never":
        return ResumeDecision.FAILED
    if policy.replay == "auto":
        return ResumeDecision.SAFE_REPLAY
    if policy.external and policy.idempotency_key is None:
        return ResumeDecision.MANUAL_REVIEW
    return ResumeDecision.SAFE_REPLAY


@dataclass(slots=True)
class Checkpoint:
    """What an earlier attempt left for one step key."""

    key: str
    status: Literal["completed", "failed", "running"]
    input_hash: str | None
    output: str | None  # JSON text, decoded only when replayed
    error: str | None  # JSON text
    decision: ResumeDecision | None
    attempt: int
    seq: int | None = None  # its place in the run's log
    output_type: str | None = None  # the concrete class of a model/dataclass/enum output


def plan_step(run_id: str, checkpoint: Checkpoint | None, input_hash: str) -> Checkpoint | None:
    """Decide a step's fate from its earlier checkpoint.

    Returns the checkpoint to replay, or None to execute the step. Raises ``InputMismatch``
    when the checkpoint was written for other input, and ``StepFailed`` when the step is parked
    (``manual_review`` or ``failed``) from an earlier attempt.
    """
    if checkpoint is None:
        return None
    if checkpoint.status == "completed":
        if checkpoint.input_hash != input_hash:
            raise InputMismatch(run_id, checkpoint.key, checkpoint.input_hash or "", input_hash)
        return checkpoint
    decision = checkpoint.decision
    if decision in (ResumeDecision.MANUAL_REVIEW, ResumeDecision.FAILED):
        raise StepFailed(run_id, checkpoint.key, decision, _parked_message(run_id, checkpoint))
    return None


def _parked_message(run_id: str, cp: Checkpoint) -> str:
    if cp.status == "running":
        what = (
            f"step {cp.key!r} of run {run_id!r} was interrupted in attempt {cp.attempt} "
            "before its checkpoint was written, so it may already have taken effect"
        )
    else:
        what = f"step {cp.key!r} of run {run_id!r} failed in attempt {cp.attempt}"
        if cp.error:
            err = json.loads(cp.error)
            what += f" ({err.get('type', 'error')}: {err.get('message', '')})"
    if cp.decision is ResumeDecision.FAILED:
        why = "it declares replay='never', so Tidebase will not run it again"
    else:
        why = (
            "it has external side effects and no idempotency_key (or replay='manual'), "
            "so it is parked for manual review"
        )
    fix = (
        f"check what it did, then call tide.runs.retry_step({run_id!r}, {cp.key!r}) to run it "
        f"again, or tide.runs.complete_step({run_id!r}, {cp.key!r}, output=...) to record its "
        "result, and re-invoke the run"
    )
    return f"{what}; {why}. To continue: {fix}"
