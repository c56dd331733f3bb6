"""The run context: what a workflow function receives, and how a step checkpoints.

Generated from ``tidebase_core/_async/context.py`` by ``tools/generate_sync.py``: edit that file, not this one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .. import context
from .._compat import StepResult, call_body, sleep
from .._run_base import (
    USAGE_FIELDS,
    Execution,
    LogOf,
    UsageInput,
    check_event_type,
    check_step_name,
    error_payload,
    usage_params,
)
from ..budgets import Budget
from ..errors import LeaseLost, NotSerializable, RunCancelled, StepTimeout, TidebaseError
from ..keys import current_scope, entered
from ..models import GateDecision
from ..replay import (
    Checkpoint,
    ReplayMode,
    ResumeDecision,
    StepPolicy,
    plan_step,
    resume_decision,
)
from ..retry import RetryPolicy
from ..serialization import decode, encode, output_type_of, type_tag
from ..serialization import input_hash as hash_input
from .budget import check_budget
from .children import run_child, run_fanout
from .events import RunEvents
from .gates import wait_at_gate
from .run_extras import RunGates, Snapshots
from .state import LiveState
from .store import StoreConnection
from .usage import RunUsage

if TYPE_CHECKING:
    from .client import Tidebase

__all__ = ["RunContext", "UsageOf"]

_PLAIN_STEP = StepPolicy()

UsageOf = Callable[[Any], Sequence[Mapping[str, Any]]]
"""A step's result → the ``usage.record`` arguments of the model calls it made."""


class RunContext:
    """The handle a workflow function receives as ``run``: its id, its input, its steps."""

    def __init__(
        self,
        client: Tidebase,
        state: Execution,
        db: StoreConnection,
        input: Any = None,
    ) -> None:
        self._client = client
        self._execution = state
        self._db = db
        self.input = input
        self.state = LiveState(self)
        """Live state: ``set``, ``patch`` (JSON merge patch), ``get``, ``save``, ``versions``."""
        self.events = RunEvents(self)
        """``emit(type, payload)`` appends to the run's event log."""
        self.usage = RunUsage(self)
        """``record(...)`` writes a token/cost ledger row for this run (and step)."""
        self.gates = RunGates(self)
        """Non-blocking gates: ``begin(name, prompt)`` and ``get(gate_id)``."""
        self.snapshots = Snapshots(self)
        """Named state snapshots: ``create(label)`` and ``list()``."""

    @property
    def run_id(self) -> str:
        return self._execution.run_id

    @property
    def workflow_name(self) -> str:
        return self._execution.workflow_name

    @property
    def attempt(self) -> int:
        """1 for the first execution; +1 every time the run is resumed or taken over."""
        return self._execution.attempt

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} run_id={self.run_id!r} workflow={self.workflow_name!r} "
            f"attempt={self.attempt}>"
        )

    def step(
        self,
        name: str,
        fn: Callable[[], Any],
        *,
        input: Any = None,
        side_effects: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        retries: int | RetryPolicy = 0,
        replay: ReplayMode | None = None,
        output_type: Any = None,
        timeout_s: float | None = None,
        input_hash: str | None = None,
        usage: UsageOf | None = None,
        spends: bool = False,
    ) -> StepResult:
        """Run ``fn`` once for this run, checkpointing its result; on replay return the checkpoint.

        ``input`` is what the step's result depends on: it is hashed, and a checkpoint written
        for a different input raises ``InputMismatch`` instead of being reused (``input_hash=``
        supplies the hash instead). The n-th call with the same ``name`` in a run is the step
        ``name#n``; the key is taken when ``step`` is called, so steps started together (a
        ``gather``) keep their keys whatever order they finish in. ``timeout_s`` bounds one try
        of the body. If the body raises, its own exception propagates (after the failure and
        its resume decision are recorded, and a note names them). ``usage``, a function of the
        step's result returning ``usage.record`` arguments (one dict per model call), writes
        those ledger rows in the same statement as the checkpoint. ``spends=True`` (the body
        calls models): before it executes (not on replay) the run tree's budget is checked, and
        ``BudgetExceeded`` raised if its recorded spend reached a cap.
        """
        check_step_name(name)
        if not callable(fn):
            raise TypeError(f"step {name!r}: fn must be callable, got {type(fn).__name__}")
        if (
            side_effects is None
            and idempotency_key is None
            and replay is None
            and retries == 0
            and spends is False
        ):
            policy = _PLAIN_STEP
        else:
            policy = StepPolicy.build(
                name,
                side_effects=side_effects,
                idempotency_key=idempotency_key,
                replay=replay,
                retries=retries,
                spends=spends,
            )
        if timeout_s is not None and (
            isinstance(timeout_s, bool) or not isinstance(timeout_s, int | float) or timeout_s <= 0
        ):
            raise ValueError(f"step {name!r}: timeout_s must be a number of seconds > 0 or None")
        key = self._execution.next_key(name)
        if input_hash is None:
            in_hash = hash_input(input, what=f"input of step {key!r}")
        elif isinstance(input_hash, str) and input_hash.strip():
            in_hash = input_hash
        else:
            raise TypeError(f"step {key!r}: input_hash must be a non-empty str (a digest)")
        return self.run_step(
            key,
            fn,
            input_hash=in_hash,
            policy=policy,
            output_type=output_type,
            usage=usage,
            timeout_s=timeout_s,
        )

    def branch(self, name: str) -> AbstractContextManager[None]:
        """A named branch for concurrent work: steps, gates and state/event operations inside
        ``with run.branch(name):`` are keyed under ``#name/``.

        Steps started together need none (they take their keys when called); coroutines that
        each run several steps, gathered (two ``agent.run`` calls, a pipeline per document),
        name theirs so a resumed run hands each its own checkpoints::

            async def review(doc):
                with run.branch(f"doc-{doc.id}"):
                    return await agent.run(doc.text)

            await asyncio.gather(*(review(d) for d in docs))
        """
        check_step_name(name)
        return entered(self._execution.scope().branch(name, numbered=False))

    def next_key(self, name: str) -> str:
        """The key of the next call named ``name`` here: ``name``, then ``name#2`` …

        Scoped like a step's: inside a step body, or a concurrent branch, the key is under it.
        """
        return self._execution.next_key(name)

    def checkpoint_of(self, key: str, input_hash: str) -> str | None:
        """The stored output (JSON text) of step ``key`` if it completed, else None.

        No I/O (checkpoints load when the run starts). Raises ``InputMismatch`` when the
        checkpoint was written for other input, ``StepFailed`` when the step is parked.
        For integrations whose framework splits "look up" and "store" (an LLM cache).
        """
        found = plan_step(self.run_id, self._execution.checkpoints.get(key), input_hash)
        if found is None:
            return None
        self._execution.passed(found.seq)
        return found.output

    def save_checkpoint(
        self,
        key: str,
        input_hash: str,
        output: Any,
        *,
        policy: StepPolicy = _PLAIN_STEP,
        usage: Sequence[Mapping[str, Any]] = (),
        log: Sequence[tuple[str, Any]] = (),
    ) -> None:
        """Checkpoint an operation executed outside ``run.step``; its usage rows and ``log``
        entries (event type, payload: an "ended" event of the framework's) in the same write."""
        ex = self._execution
        encoded = encode(output, what=f"output of step {key!r}")
        tag = type_tag(output)
        rows = [self._usage_row(key, fields) for fields in usage]
        entries = [
            (check_event_type(type), encode(payload, what=f"payload of event {type!r}"))
            for type, payload in log
        ]
        decision = policy.decision
        written = self._db.write_checkpoint(
            run_id=ex.run_id,
            token=ex.token,
            key=key,
            input_hash=input_hash,
            output=encoded,
            output_type=tag,
            attempt=ex.attempt,
            decision=decision,
            idempotency_key=policy.idempotency_key,
            replaces=key in ex.rows,
            usage=rows,
            entries=entries,
        )
        if not written:
            self._refused()
        ex.rows.add(key)
        ex.checkpoints[key] = Checkpoint(
            key, "completed", input_hash, encoded, None, decision, ex.attempt, output_type=tag
        )

    def run_step(
        self,
        key: str,
        fn: Callable[[], Any],
        *,
        input_hash: str,
        policy: StepPolicy,
        output_type: Any = None,
        usage: UsageOf | None = None,
        log: LogOf[Any] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """``step`` for a key and input hash already chosen (decorated steps choose theirs)."""
        ex = self._execution
        found = plan_step(ex.run_id, ex.checkpoints.get(key), input_hash)
        if found is not None:
            ex.passed(found.seq)
            return decode(
                found.output, output_type or output_type_of(fn), type_tag=found.output_type
            )
        self._ready()
        if policy.spends and ex.budget_holders:  # no budget up the tree: no I/O
            check_budget(self, key)

        decision = policy.decision
        intent = decision is not ResumeDecision.SAFE_REPLAY  # unsafe to repeat: record intent
        tries = 0
        while True:
            if intent:
                # Before every try: a crash during it must park the step, not repeat it.
                self._write_step_state(
                    key,
                    input_hash,
                    policy,
                    "running",
                    decision,
                    None,
                    {"step": key, "attempt": ex.attempt, "try": tries + 1},
                )
            inside = context.current_step.set(key)
            # Each try's body is a fresh scope: a retry replays the inner steps done before.
            scoped = current_scope.set(ex.scope().step_body(key))
            try:
                value = call_body(fn, timeout_s)
                break
            except Exception as exc:
                if isinstance(exc, TidebaseError) and not isinstance(exc, StepTimeout):
                    raise  # cancel, lost lease, a nested step's verdict: not this body's failure
                left = policy.retry.max_retries - tries
                verdict = resume_decision(policy, retries_left=left)
                self._record_failure(key, input_hash, policy, verdict, exc, tries)
                if verdict is ResumeDecision.FAILED_RETRYABLE:
                    sleep(policy.retry.delay(tries))
                    tries += 1
                    ex.check_live()
                    continue
                ex.note_failure(exc, key, verdict)
                exc.add_note(
                    f"tidebase: step {key!r} of run {ex.run_id!r} failed"
                    + (f" after {tries + 1} tries" if tries else "")
                    + f"; resume decision: {verdict.value}"
                )
                raise
            finally:
                current_scope.reset(scoped)
                context.current_step.reset(inside)

        try:
            self.save_checkpoint(
                key,
                input_hash,
                value,
                policy=policy,
                usage=usage(value) if usage else (),
                log=log(value) if log else (),
            )
        except NotSerializable as exc:
            if intent:
                # The body ran and may have acted: park it rather than leave a bare intent row.
                self._record_failure(key, input_hash, policy, decision, exc, tries)
            raise
        return value

    def _usage_row(self, key: str, fields: Mapping[str, Any]) -> UsageInput:
        if not isinstance(fields, Mapping):
            raise TypeError(
                f"step {key!r}: usage must give one dict of usage.record arguments per model "
                f"call, got {type(fields).__name__}"
            )
        unknown = set(fields) - USAGE_FIELDS
        if unknown:
            raise TypeError(f"step {key!r}: unknown usage fields {sorted(unknown)}")
        ex = self._execution
        return usage_params(run_id=ex.run_id, attempt=ex.attempt, step=key, **fields)

    def _ready(self) -> None:
        """Before a body runs: stop if the run was cancelled or taken over, and send its
        deferred claim if it still has one (a body's effects never precede its run's record)."""
        self._execution.check_live()
        self._db.flush_claim()

    def check_budget(self, step: str | None = None) -> None:
        """Raise ``BudgetExceeded`` if the recorded spend of the run tree holding a budget that
        governs this run reached one of its caps (``step``: the key named in the error).

        Call it before spending (a model call); steps declared ``spends=True`` do. No I/O when
        no budget governs the run (decided when the run started); else one query, which also
        emits the budget's ``budget.warning`` event once it is 80 % spent.
        """
        if self._execution.budget_holders:
            check_budget(self, step)

    # -- gates and child runs ----------------------------------------------------------------

    def gate(
        self,
        name: str,
        prompt: str,
        *,
        data: Any = None,
        timeout: float | None = None,
        wait: bool = True,
    ) -> GateDecision:
        """A durable approval: wait until someone decides (``tide.gates.resolve``).

        The run is ``waiting`` while the gate is open. On replay the recorded decision returns
        at once. ``wait=False`` parks the run and raises ``GatePending`` so the process may
        exit; invoke the run again after the decision. ``timeout`` raises ``GateTimeout``.
        """
        return wait_at_gate(self, name, prompt, data=data, timeout=timeout, wait=wait)

    def child(
        self,
        workflow_name: str,
        fn: Callable[[RunContext, Any], Any],
        *,
        name: str | None = None,
        input: Any = None,
        output_type: Any = None,
        budget: Budget | None = None,
    ) -> Any:
        """Run ``fn(run, input)`` as a child run linked to this one by the edge ``name``.

        ``run.child("edge", fn)`` names the edge and the child's workflow alike; the official
        SDK's ``run.child(workflow_name, fn, name="edge")`` names them apart.
        Idempotent by edge name: calling it again (in this attempt, a resumed one, or from a
        racing worker) joins the same child run, and a finished child returns its result
        without running again. The child draws from this run's budgets, and from ``budget``
        (caps of its own) if given.
        """
        edge = workflow_name if name is None else name
        return run_child(
            self,
            edge,
            workflow_name,
            fn,
            input=input,
            output_type=output_type,
            budget=Budget.coerce(budget),
        )

    def fanout(
        self,
        name: str,
        children: Sequence[tuple[str, Callable[[RunContext, Any], Any], Any] | Mapping[str, Any]],
        *,
        max_parallel: int | None = None,
    ) -> list[Any]:
        """Run ``(child_name, fn, input)`` children in parallel as child runs; their results.

        A child may also be the official SDK's dict, ``{"name", "workflow", "input"}`` with an
        optional ``"workflow_name"`` (defaults to the name).

        Every child runs to the end (finished ones are durable) before the first failure, if
        any, is raised. A resumed parent reuses finished children's results.
        """
        return run_fanout(self, name, children, max_parallel=max_parallel)

    # The async API's seed spellings of the state and usage calls.

    def state_set(self, value: Any) -> None:
        self.state.set(value)

    def state_patch(self, changes: Mapping[str, Any]) -> None:
        self.state.patch(changes)

    def state_save(self, label: str) -> None:
        self.state.save(label)

    def usage_record(self, **fields: Any) -> None:
        self.usage.record(**fields)

    def _record_failure(
        self,
        key: str,
        in_hash: str,
        policy: StepPolicy,
        verdict: ResumeDecision,
        exc: BaseException,
        tries: int,
    ) -> None:
        error = error_payload(exc)
        ex = self._execution
        self._write_step_state(
            key,
            in_hash,
            policy,
            "failed",
            verdict,
            error,
            {
                "step": key,
                "attempt": ex.attempt,
                "try": tries + 1,
                "decision": verdict.value,
                "error": {"type": error["type"], "message": error["message"]},
            },
        )
        if verdict is not ResumeDecision.FAILED_RETRYABLE:
            # Later in this attempt (an outer step's retry) the step is as parked as on resume.
            ex.checkpoints[key] = Checkpoint(
                key, "failed", in_hash, None, encode(error, what="step error"), verdict, ex.attempt
            )

    def _write_step_state(
        self,
        key: str,
        in_hash: str,
        policy: StepPolicy,
        status: str,
        decision: ResumeDecision,
        error: dict[str, Any] | None,
        event: dict[str, Any],
    ) -> None:
        """Record a step's intent ('running') or failure ('failed'), fenced by the lease."""
        ex = self._execution
        recorded = self._db.write_step_state(
            run_id=ex.run_id,
            token=ex.token,
            key=key,
            status=status,
            input_hash=in_hash,
            error=None if error is None else encode(error, what="step error"),
            attempt=ex.attempt,
            decision=decision,
            idempotency_key=policy.idempotency_key,
            event="step.started" if status == "running" else "step.failed",
            payload=encode(event, what="event"),
        )
        if not recorded:
            self._refused()
        ex.rows.add(key)

    def _refused(self) -> None:
        """A fenced write matched nothing: say whether the run was cancelled or taken over."""
        state = self._execution
        now = self._db.fence_state(state.run_id)
        if now is not None and now.owner_token == state.token and now.status == "cancelled":
            state.cancelled = True
            state.cancel_reason = now.cancel_reason
            raise RunCancelled(state.run_id, now.cancel_reason)
        state.lost = True
        raise LeaseLost(state.run_id, "another worker took the run over")
