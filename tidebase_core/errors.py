"""Every error Tidebase raises on purpose.

Each message names the thing (run, step, value) and the fix, so that the person reading a
traceback at 3 a.m. knows what to do next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .budgets import Budget, BudgetSpend
    from .replay import ResumeDecision


class TidebaseError(Exception):
    """Base class of every error raised by Tidebase."""


# -- configuration and database ------------------------------------------------------------


class ConfigurationError(TidebaseError, ValueError):
    """A client option or environment variable has a value Tidebase cannot use."""


class DatabaseUnavailable(TidebaseError):
    """Postgres could not be reached (or the embedded server could not start)."""


class ConnectionReleased(TidebaseError):
    """Code a run started (a task, a thread) wrote after the run ended and gave back its
    connection."""


class MigrationsPending(TidebaseError):
    """The schema is older than this version of Tidebase and auto-migration is off."""


# -- arguments --------------------------------------------------------------------------------


class InvalidName(TidebaseError, ValueError):
    """A run id, workflow name or step name that cannot be stored as given."""


class AsyncInSyncApi(TidebaseError, TypeError):
    """A coroutine reached the sync API (a step function returned an awaitable)."""


class NotSerializable(TidebaseError, TypeError):
    """A value (step output, run input or result, step argument) is not JSON-serializable."""


# -- runs -------------------------------------------------------------------------------------


class RunNotFound(TidebaseError, LookupError):
    """No run has this id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}; list runs with tide.runs.list()")


class WorkflowMismatch(TidebaseError):
    """The run id is already used by a run of another workflow."""

    def __init__(self, run_id: str, expected: str, actual: str) -> None:
        self.run_id = run_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"run {run_id!r} belongs to workflow {actual!r}, not {expected!r}; "
            "use another run_id for this workflow"
        )


class RunLocked(TidebaseError):
    """Another live worker holds the run's lease."""

    def __init__(
        self, run_id: str, *, host: str | None, pid: int | None, expires_in: float | None
    ) -> None:
        self.run_id = run_id
        self.host = host
        self.pid = pid
        self.expires_in = expires_in
        holder = f"pid {pid} on {host}" if host else "another worker"
        when = f"; its lease expires in {expires_in:.1f}s" if expires_in is not None else ""
        super().__init__(
            f"run {run_id!r} is being executed by {holder}{when}. "
            "Pass wait=True to wait for it and then replay, or cancel it with tide.runs.cancel()"
        )


class LeaseLost(TidebaseError):
    """This worker no longer owns the run: its lease expired and another worker took over.

    Every write the old owner attempts after the takeover is refused with this error, so a
    zombie worker cannot overwrite what the new owner records.
    """

    def __init__(self, run_id: str, detail: str = "") -> None:
        self.run_id = run_id
        super().__init__(
            f"lost the lease on run {run_id!r}{': ' + detail if detail else ''}; "
            "another worker owns it now and nothing more was written by this one"
        )


class RunCancelled(TidebaseError):
    """The run was cancelled; the worker stops at the next step or gate boundary."""

    def __init__(self, run_id: str, reason: str | None = None) -> None:
        self.run_id = run_id
        self.reason = reason
        super().__init__(f"run {run_id!r} was cancelled" + (f": {reason}" if reason else ""))


class InputMismatch(TidebaseError):
    """A checkpoint exists for this step (or run) but was written for different input."""

    def __init__(self, run_id: str, step: str | None, stored_hash: str, new_hash: str) -> None:
        self.run_id = run_id
        self.step = step
        self.stored_hash = stored_hash
        self.new_hash = new_hash
        if step is None:
            what = f"run {run_id!r} was started with different input"
            fix = (
                "use a new run_id for the new input, "
                "or pass input=None to resume with the stored one"
            )
        else:
            what = f"step {step!r} of run {run_id!r} was checkpointed for different input"
            fix = (
                "the workflow is no longer deterministic here; if the change is intended, "
                "give the step a new name so it executes instead of replaying"
            )
        super().__init__(
            f"{what} (stored input hash {stored_hash[:16]}…, now {new_hash[:16]}…); {fix}"
        )


class StepFailed(TidebaseError):
    """A step raised (after its retries), or is parked from an earlier attempt.

    ``decision`` says what re-invoking the run will do with this step.
    """

    def __init__(self, run_id: str, step: str, decision: ResumeDecision, message: str) -> None:
        self.run_id = run_id
        self.step = step
        self.decision = decision
        super().__init__(message)


class StepTimeout(TidebaseError, TimeoutError):
    """One try of a step's body ran longer than its ``timeout_s`` (retried like any failure)."""


class BranchAmbiguous(TidebaseError):
    """Concurrent code took the same step name in one scope, in an order scheduling decides.

    A resumed run could then hand one branch the other's checkpoint; Tidebase refuses at first
    execution instead.
    """

    def __init__(self, key: str, other: str) -> None:
        self.key = key
        super().__init__(
            f"step {key!r} was started while {other!r}, running concurrently in the same run, "
            "had started a step of that name too; which gets which key would depend on "
            "scheduling. Give each concurrent branch a name: "
            "`with run.branch(f'doc-{doc_id}'): ...` inside each coroutine you gather (or "
            "start the steps themselves together: run.step / decorated steps take their key "
            "when called), or give the steps distinct names"
        )


class StepNotFound(TidebaseError, LookupError):
    """The run has no step with this key."""

    def __init__(self, run_id: str, step: str) -> None:
        self.run_id = run_id
        self.step = step
        super().__init__(
            f"run {run_id!r} has no step {step!r}; list its steps with tide.runs.steps({run_id!r})"
        )


class StepNotParked(TidebaseError):
    """An operator action on a step that is not waiting for one (it already completed)."""


class BudgetExceeded(TidebaseError):
    """The run tree's recorded spend reached a cap of its budget before a step declared
    ``spends=True`` (or a plugin's model call) could start.

    The run fails with ``failure_class='budget'``; its resume decision is ``manual_review``: a
    person raises (or removes) the budget with ``tide.runs.set_budget`` and invokes the run
    again, which continues at the step that was stopped.
    """

    def __init__(
        self,
        run_id: str,
        holder: str,
        budget: Budget,
        spend: BudgetSpend,
        caps: list[str],
        step: str | None = None,
    ) -> None:
        from .replay import ResumeDecision

        self.run_id = run_id
        self.holder = holder
        """The run whose budget was reached (``run_id`` itself or an ancestor)."""
        self.budget = budget
        self.spend = spend
        self.caps = caps
        self.step = step
        self.decision = ResumeDecision.MANUAL_REVIEW
        where = f"step {step!r} of run {run_id!r}" if step else f"run {run_id!r}"
        whose = (
            f"the budget of run {holder!r}"
            if holder == run_id
            else f"the budget of run {holder!r} (an ancestor it draws from)"
        )
        reached = ", ".join(f"{c} {getattr(spend, c)} >= {getattr(budget, c)}" for c in caps)
        super().__init__(
            f"{where} was stopped before it could spend more: {whose} is {budget}, and its run "
            f"tree has recorded {spend} ({reached}). To continue, raise or remove the budget: "
            f"tide.runs.set_budget({holder!r}, Budget(...)) (or None), then invoke the run "
            f"again{'' if holder == run_id else ' (its top-level run, for a child run)'}"
        )


class StateEmpty(TidebaseError, LookupError):
    """``run.state.save`` before the state was ever set."""


# -- gates ------------------------------------------------------------------------------------


class GateNotFound(TidebaseError, LookupError):
    """The run has no gate of that name (yet)."""

    def __init__(self, run_id: str, name: str) -> None:
        self.run_id = run_id
        self.name = name
        super().__init__(
            f"run {run_id!r} has no gate {name!r}; pending gates: tide.gates.list(status='pending')"
        )


class GateAlreadyResolved(TidebaseError):
    """The gate has already been decided; a decision is made exactly once."""


class GateTokenMismatch(TidebaseError, PermissionError):
    """The resolve token given does not belong to this gate."""


class GatePending(TidebaseError):
    """The gate has no decision yet and ``wait=False``: the run is parked as ``waiting``."""


class GateTimeout(TidebaseError):
    """No decision arrived within the gate's ``timeout``."""


__all__ = [
    "AsyncInSyncApi",
    "BranchAmbiguous",
    "BudgetExceeded",
    "ConfigurationError",
    "ConnectionReleased",
    "DatabaseUnavailable",
    "GateAlreadyResolved",
    "GateNotFound",
    "GatePending",
    "GateTimeout",
    "GateTokenMismatch",
    "InputMismatch",
    "InvalidName",
    "LeaseLost",
    "MigrationsPending",
    "NotSerializable",
    "RunCancelled",
    "RunLocked",
    "RunNotFound",
    "StateEmpty",
    "StepFailed",
    "StepNotFound",
    "StepNotParked",
    "StepTimeout",
    "TidebaseError",
    "WorkflowMismatch",
]
