"""The client: run workflows durably, and look at what they did.

This is the async source; ``tidebase_core/_sync/client.py`` is generated from it.
"""

from __future__ import annotations

import builtins
import functools
import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from .. import context
from .._acompat import (
    DEFER_NEW_CLAIMS,
    blocking_twin,
    install_branches,
    resolve,
    run_blocking,
    shielded,
    sleep,
)
from .._run_base import (
    Execution,
    check_limit,
    check_name,
    check_run_id,
    error_payload,
    holder_is_gone,
    new_run_id,
    settle_claim,
)
from .._sync.store import Store
from ..budgets import Budget
from ..errors import (
    BudgetExceeded,
    GatePending,
    LeaseLost,
    RunCancelled,
    RunLocked,
    RunNotFound,
    StepNotFound,
    StepNotParked,
    TidebaseError,
)
from ..heartbeat import Heartbeat
from ..keys import current_scope, current_strand
from ..models import Event, RunInfo, RunStatus, StateVersion, StepInfo
from ..owner import Owner, let_go
from ..queue_models import Enqueued, WebhookAttempt
from ..registry import lookup as lookup_workflow
from ..replay import ResumeDecision
from ..serialization import decode, decode_json, encode, output_type_of, type_tag
from ..settings import Settings
from ..store.migrate import Migration, connect_and_migrate
from ..store.records import Claim, ClaimRequest
from .context import AsyncRunContext
from .events import AsyncEvents, subscribe
from .gates import AsyncGates
from .queue_ops import create_run, list_webhooks, recover_run
from .queue_store import AsyncQueueStore
from .queues import AsyncQueues, check_url, enqueue
from .schedules import AsyncSchedules
from .sessions import AsyncRunSession, attach
from .store import AsyncStore, AsyncStoreConnection
from .usage import AsyncUsage

__all__ = ["AsyncRuns", "AsyncTidebase"]

_MAX_CLAIM_RACES = 20
_UNSET: Any = object()  # set_budget without a budget argument (None removes the budget)


class AsyncTidebase:
    """A Tidebase client: ``tide.run(name, fn, run_id=..., input=...)`` runs a workflow durably.

    ``database_url`` (or ``TIDEBASE_DATABASE_URL``) points at any Postgres ≥ 14; without one,
    an embedded PostgreSQL starts in the user's data directory (``TIDEBASE_HOME``). Nothing
    connects until first use.
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        lease_seconds: float | None = None,
        schema: str | None = None,
        auto_migrate: bool | None = None,
        max_connections: int | None = None,
        reconnect_seconds: float | None = None,
    ) -> None:
        self.settings = Settings.resolve(
            database_url,
            lease_seconds=lease_seconds,
            schema=schema,
            auto_migrate=auto_migrate,
            max_connections=max_connections,
            reconnect_seconds=reconnect_seconds,
        )
        self._store = AsyncStore(self.settings)
        self._twin: Store | None = None
        self._heartbeat = Heartbeat(self._blocking_store, self.settings.lease_seconds)
        self._pid = os.getpid()
        self.runs = AsyncRuns(self)
        """Look at runs (get, list, steps, events, subscribe, state), cancel them."""
        self.events = AsyncEvents(self)
        """Append events to any run's log (``tide.events.append``)."""
        self.gates = AsyncGates(self)
        """Decide, list and look at approval gates."""
        self.usage = AsyncUsage(self)
        """The token/cost ledger: ``records(run_id)`` and ``summary(...)``."""
        self.queues = AsyncQueues(self)
        """Queue caps and push URLs (``configure``), depth and running (``list``)."""
        self.schedules = AsyncSchedules(self)
        """Cron schedules that enqueue workflows: ``set``, ``list``, ``delete``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.settings.safe_url} schema={self.settings.schema!r}>"

    # -- lifecycle ----------------------------------------------------------------------------

    async def open(self) -> AsyncTidebase:
        """Connect (starting the embedded server and migrating if needed). Optional: first use
        does it too."""
        await self._store.open()
        return self

    async def close(self) -> None:
        self._heartbeat.stop()
        await self._store.close()
        twin, self._twin = self._twin, None
        if twin is not None:
            twin.close()  # for the sync client the twin is its own (already closed) store

    async def __aenter__(self) -> AsyncTidebase:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def migrate(self) -> list[Migration]:
        """Apply pending schema migrations; return those applied (``TIDEBASE_AUTO_MIGRATE``)."""
        _, applied = await run_blocking(connect_and_migrate, self.settings, apply=True)
        return applied

    def workflow(
        self, fn: Any = None, /, *, name: str | None = None, budget: Budget | None = None
    ) -> Any:
        """``@tide.workflow``: a decorated workflow that runs on this client."""
        from ..decorators import workflow

        return workflow(fn, name=name, client=self, budget=budget)

    def step(self, fn: Any = None, /, **options: Any) -> Any:
        """``@tide.step``: ``@tidebase.step`` (a step runs in whichever run calls it)."""
        from ..decorators import durable_step

        return durable_step(fn, **options)

    # -- queues and workers (issue 13; the logic lives in queues.py, worker.py …) -------------

    async def enqueue(
        self,
        workflow_name: str,
        *,
        queue: str = "default",
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
        dedupe_key: str | None = None,
        delay_s: float | None = None,
        run_at: Any = None,
        max_attempts: int | None = None,
        priority: int | None = None,
        deadline_s: float | None = None,
        recovery_webhook: str | None = None,
        run_id: str | None = None,
        budget: Budget | None = None,
    ) -> Enqueued:
        """Queue a run of ``workflow_name`` (status ``queued``) for a worker (``tide.work``).

        ``dedupe_key``: while a run with this key is queued, running or waiting on this queue,
        that run is returned (``deduplicated=True``) instead of a new one. ``delay_s``/``run_at``:
        not before then. ``priority``: higher first. ``max_attempts`` (default 1): failed
        attempts are retried after 5 s·2^(n−1) (at most 5 min). ``deadline_s``: cancelled
        (reason ``deadline``) if not finished by then. ``budget``: caps on the run tree's
        spend (default: the ``@workflow(budget=...)`` of the workflow, if registered here).
        """
        return await enqueue(
            self,
            workflow_name,
            queue=queue,
            input=input,
            metadata=metadata,
            dedupe_key=dedupe_key,
            delay_s=delay_s,
            run_at=run_at,
            max_attempts=max_attempts,
            priority=priority,
            deadline_s=deadline_s,
            recovery_webhook=recovery_webhook,
            run_id=run_id,
            budget=budget,
        )

    async def work(
        self,
        queues: Sequence[str] | str = ("default",),
        *,
        concurrency: int = 1,
        stop: Any = None,
        poll_s: float = 0.2,
        reconcile: bool = True,
    ) -> None:
        """Claim and execute queued runs with the workflows registered by name, until ``stop``
        (an Event or a callable) is set; each slot finishes its current run first."""
        from .worker import AsyncWorker

        self._after_fork()
        await AsyncWorker(
            self, queues, concurrency=concurrency, stop=stop, poll_s=poll_s, reconcile=reconcile
        ).run()

    def webhook_app(self, *, secret: str | None = None) -> Any:
        """An ASGI app receiving signed ``run.resume``/``run.invoke`` webhooks (see webhooks)."""
        from ..webhooks import webhook_app

        return webhook_app(self, secret=secret)

    def _blocking_store(self) -> Store:
        """A blocking store for the heartbeat thread and for sync steps in async workflows."""
        if self._twin is None:
            self._twin = blocking_twin(self._store)
        return self._twin

    # -- running ------------------------------------------------------------------------------

    async def run(
        self,
        name: str,
        fn: Callable[[AsyncRunContext, Any], Any] | None = None,
        *,
        run_id: str | None = None,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
        wait: bool = False,
        output_type: Any = None,
        recovery_webhook: str | None = None,
        budget: Budget | None = None,
    ) -> Any:
        """Start or resume the run ``run_id`` of workflow ``name``, executing ``fn(run, input)``.

        Steps completed by an earlier attempt return their checkpoints without executing; a
        completed run returns its stored result. ``input=None`` on an existing run resumes it
        with its stored input. Another live worker on the run raises ``RunLocked`` (or, with
        ``wait=True``, is waited for before replaying). Without ``fn``, the workflow registered
        under ``name`` runs. ``recovery_webhook``: an http(s) URL the reconciler calls (signed)
        if the run stalls, so something re-invokes it. ``budget``: caps on the spend of the run
        and its child runs (``Budget(usd=5.0, tokens=200_000)``), set when the run is created;
        change it later with ``tide.runs.set_budget``.
        """
        return await self._run(
            name,
            fn,
            run_id=run_id,
            input=input,
            metadata=metadata,
            wait=wait,
            output_type=output_type,
            recovery_webhook=recovery_webhook,
            budget=budget,
        )

    async def _run(
        self,
        name: str,
        fn: Callable[[AsyncRunContext, Any], Any] | None = None,
        *,
        run_id: str | None = None,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
        wait: bool = False,
        output_type: Any = None,
        recovery_webhook: str | None = None,
        budget: Budget | None = None,
        parent: str | None = None,
    ) -> Any:
        """``run``, and for a child run (``parent``) drawing from its parent's budgets too."""
        webhook = check_url(recovery_webhook, "recovery_webhook")
        check_name(name, "workflow name")
        # A new top-level run: nothing to replay or wait for, so its claim can wait for its
        # first durable operation (DESIGN §6; a run that makes none is written once).
        deferred = DEFER_NEW_CLAIMS and run_id is None and parent is None and webhook is None
        run_id = new_run_id() if run_id is None else check_run_id(run_id)
        caps = Budget.coerce(budget)
        if fn is None:  # the workflow registered under this name (@tide.workflow("name"))
            entry = lookup_workflow(name)
            fn, output_type = entry.invoke, output_type or entry.output_type
            caps = caps or entry.budget
        if not callable(fn):
            raise TypeError(f"workflow {name!r}: fn must be callable as fn(run, input)")
        result_type = output_type or output_type_of(fn)
        self._after_fork()
        request = ClaimRequest.new(
            run_id=run_id,
            workflow=name,
            input=input,
            metadata=metadata,
            lease=self.settings.lease_seconds,
            budget=None if caps is None else caps.to_json(),
            parent=parent,
        )
        owner = request.owner
        try:
            return await self._claim_and_execute(
                owner,
                request,
                fn=fn,
                input=input,
                result_type=result_type,
                wait=wait,
                webhook=webhook,
                deferred=deferred,
            )
        finally:
            let_go(owner.token)

    async def _claim_and_execute(
        self,
        owner: Owner,
        request: ClaimRequest,
        *,
        fn: Callable[[AsyncRunContext, Any], Any],
        input: Any,
        result_type: Any,
        wait: bool,
        webhook: str | None,
        deferred: bool = False,
    ) -> Any:
        run_id, name = request.run_id, request.workflow
        async with self._store.connection() as db:
            if deferred:
                state = Execution(run_id, name, owner, 1, self.settings.lease_seconds)
                state.budget_holders = () if request.budget is None else (run_id,)
                db.defer_claim(request, then=functools.partial(self._heartbeat.track, state))
                return await self._execute(db, state, fn, input)
            claim = await self._claim(db, request, wait=wait)
            if not claim.claimed:  # completed earlier: its stored result, typed
                return decode(claim.result, result_type, type_tag=claim.result_type)
            if webhook is not None:
                await AsyncQueueStore(db).set_recovery_webhook(run_id, webhook)
            run_input = input if request.check_input else decode_json(claim.input)
            return await self._execute_claimed(db, run_id, name, owner, claim, fn, run_input)

    async def _execute_claimed(
        self,
        db: AsyncStoreConnection,
        run_id: str,
        name: str,
        owner: Owner,
        claim: Claim,
        fn: Callable[[AsyncRunContext, Any], Any],
        run_input: Any,
    ) -> Any:
        """Execute a run whose lease ``owner`` holds: by ``run`` and by queue workers alike."""
        state = await self._execution(db, run_id, name, owner, claim)
        return await self._execute(db, state, fn, run_input)

    async def _execution(
        self, db: AsyncStoreConnection, run_id: str, name: str, owner: Owner, claim: Claim
    ) -> Execution:
        """What the new lease holder knows: the checkpoints and operations of earlier attempts
        (one query, none for a run just created)."""
        state = Execution(run_id, name, owner, claim.attempt, self.settings.lease_seconds)
        state.budget_holders = claim.budget_holders
        if not claim.created:
            state.checkpoints, state.ops_done = await db.load_checkpoints(run_id)
            state.rows = set(state.checkpoints)
            state.resume_seq = claim.last_seq
        return state

    async def _claim(self, db: AsyncStoreConnection, request: ClaimRequest, *, wait: bool) -> Claim:
        run_id = request.run_id
        void = None
        delay = 0.02
        races = 0
        while True:
            claim = await db.claim_run(request, void_token=void)
            if claim is None:
                # Another worker created the run while our statement ran: look again.
                races += 1
                if races > _MAX_CLAIM_RACES:
                    raise RunLocked(run_id, host=None, pid=None, expires_in=None)
                continue
            settled = settle_claim(
                claim,
                run_id=run_id,
                workflow=request.workflow,
                input_hash=request.input_hash,
                check_input=request.check_input,
            )
            if settled.outcome != "locked":
                return claim
            if holder_is_gone(claim):
                void = claim.owner_token  # its process died on this host: the lease is void
                continue
            if not wait:
                raise RunLocked(
                    run_id,
                    host=(claim.owner_host or "").split("|")[0] or None,
                    pid=claim.owner_pid,
                    expires_in=claim.lease_expires_in,
                )
            pause = delay
            if claim.lease_expires_in is not None:
                pause = min(delay, max(claim.lease_expires_in, 0.0) + 0.01)
            await sleep(pause)
            delay = min(delay * 2, 1.0)

    async def _execute(
        self,
        db: AsyncStoreConnection,
        state: Execution,
        fn: Callable[[AsyncRunContext, Any], Any],
        run_input: Any,
    ) -> Any:
        ctx = AsyncRunContext(self, state, db, run_input)
        if not db.claim_deferred:  # else tracked once the claim is sent
            self._heartbeat.track(state)
        install_branches()
        token = context._current.set(ctx)
        scoped = current_scope.set(state.root)
        stranded = current_strand.set(state.strand)
        try:
            try:
                value = await resolve(fn(ctx, run_input))
                if state.parked:
                    raise GatePending(
                        f"run {state.run_id!r} is parked at a gate (run.gate(..., wait=False) "
                        "raised GatePending) but the workflow returned anyway, so it was not "
                        "completed. Let GatePending propagate out of the workflow, and invoke the "
                        "run again after the decision"
                    )
                result = encode(value, what=f"result of run {state.run_id!r}")
            except RunCancelled as exc:
                if exc.run_id != state.run_id:  # a child run was cancelled: this run fails
                    await shielded(self._fail, db, state, exc)
                else:
                    await shielded(db.release_run, run_id=state.run_id, token=state.token)
                raise
            except LeaseLost:
                raise  # not ours any more: nothing to record
            except GatePending:
                if not state.parked:  # a child parked at its gate: wait with it
                    await shielded(
                        db.park_run,
                        run_id=state.run_id,
                        token=state.token,
                        payload=encode({"child": True}, what="event"),
                    )
                raise
            except BaseException as exc:
                # Shielded: a run whose task is cancelled (asyncio.timeout, an anyio cancel
                # scope) still records its end and gives its lease back.
                await shielded(self._fail, db, state, exc)
                raise
            try:
                completed = await db.complete_run(
                    run_id=state.run_id,
                    token=state.token,
                    attempt=state.attempt,
                    result=result,
                    result_type=type_tag(value),
                    payload=encode({"attempt": state.attempt}, what="event"),
                )
            except BaseException as exc:  # cancelled while completing: fenced, so harmless
                await shielded(self._fail, db, state, exc)
                raise
            if not completed:
                await ctx._refused()
            return value
        finally:
            current_strand.reset(stranded)
            current_scope.reset(scoped)
            context._current.reset(token)
            self._heartbeat.untrack(state)

    async def _fail(self, db: AsyncStoreConnection, state: Execution, exc: BaseException) -> None:
        """Record the run as failed (best effort: the caller sees the original exception)."""
        failed_step = state.failure_of(exc)
        step: str | None = None
        failure_class: ResumeDecision | str | None = None
        if failed_step is not None:
            step, failure_class = failed_step
        extra: dict[str, Any] = {}
        if isinstance(exc, BudgetExceeded):  # this run's or a child's: both wait for a person
            step, failure_class = (exc.step if exc.run_id == state.run_id else None), "budget"
            extra = {
                "decision": exc.decision.value,
                "budget_run_id": exc.holder,
                "budget": exc.budget.model_dump(mode="json", exclude_none=True),
                "spend": exc.spend.model_dump(mode="json"),
            }
        error = error_payload(exc)
        try:
            recorded = await db.fail_run(
                run_id=state.run_id,
                token=state.token,
                error=encode(error, what="run error"),
                failure_class=failure_class,
                payload=encode(
                    {
                        "attempt": state.attempt,
                        "step": step,
                        "failure_class": failure_class,
                        "error": {"type": error["type"], "message": error["message"]},
                        **extra,
                    },
                    what="event",
                ),
            )
            if not recorded:
                # Cancelled meanwhile (keep that status, give the lease back) or taken over.
                await db.release_run(run_id=state.run_id, token=state.token)
        except TidebaseError:
            pass

    def _after_fork(self) -> None:
        """A forked child must not use the parent's connections or heartbeat thread."""
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._store = AsyncStore(self.settings)
            self._twin = None
            self._heartbeat = Heartbeat(self._blocking_store, self.settings.lease_seconds)


class AsyncRuns:
    """``tide.runs``: look at runs, their steps and events; cancel; settle parked steps."""

    def __init__(self, client: AsyncTidebase) -> None:
        self._client = client

    async def create(
        self,
        workflow_name: str,
        *,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
        recovery_webhook: str | None = None,
        run_id: str | None = None,
        budget: Budget | None = None,
    ) -> RunInfo:
        """Create a run (status ``pending``) without executing it: drive it later with
        ``tide.run(name, fn, run_id=...)``, ``runs.attach`` or a recovery webhook.
        ``budget``: caps on the spend of the run and its child runs."""
        return await create_run(
            self._client,
            workflow_name,
            input=input,
            metadata=metadata,
            recovery_webhook=recovery_webhook,
            run_id=run_id,
            budget=budget,
        )

    async def recover(self, run_id: str, reason: str = "manual") -> RunInfo:
        """The retry button: put a failed or stalled run back where something re-invokes it
        (a queued run back on its queue; a plain run ``pending`` for a worker that has its
        workflow registered, or its recovery webhook). A run a live worker holds raises
        ``RunLocked``; a completed or cancelled one stays as it is."""
        return await recover_run(self._client, run_id, reason=reason)

    async def attach(
        self,
        workflow_name: str,
        *,
        run_id: str | None = None,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
        recovery_webhook: str | None = None,
        heartbeat_s: float | None = 20.0,
    ) -> AsyncRunSession:
        """A ``RunSession`` on run ``run_id`` (a new run without one): step/gate/state/usage
        calls until ``complete(result)``, ``fail(error)`` or ``close()``."""
        return await attach(
            self._client,
            workflow_name,
            run_id=run_id,
            input=input,
            metadata=metadata,
            recovery_webhook=recovery_webhook,
            heartbeat_s=heartbeat_s,
        )

    async def webhooks(self, run_id: str) -> builtins.list[WebhookAttempt]:
        """Every recovery/push webhook attempt made for the run, oldest first."""
        return await list_webhooks(self._client, run_id)

    async def get(self, run_id: str) -> RunInfo:
        """The run; with a budget governing it, that budget and its run tree's spend too."""
        check_run_id(run_id)
        async with self._client._store.connection() as db:
            run = await db.get_run(run_id)
            if run is None:
                raise RunNotFound(run_id)
            if not run.budget_holders:
                return run
            statuses = await db.budget_statuses(run.budget_holders, run_id=run_id, check=False)
        statuses.sort(key=lambda s: run.budget_holders.index(s.run_id))
        if not statuses:
            return run
        nearest = statuses[0]
        return run.model_copy(
            update={
                "budget": nearest.budget,
                "budget_run_id": nearest.run_id,
                "spend": nearest.spend,
            }
        )

    async def set_budget(
        self,
        run_id: str,
        budget: Budget | object | None = _UNSET,
        *,
        usd: float | Decimal | None = None,
        tokens: int | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> RunInfo:
        """Set the caps of ``run_id``'s budget (which its child runs draw from too); ``None``
        removes it. ``set_budget(run_id, Budget(usd=10))`` or ``set_budget(run_id, usd=10)``.

        A run stopped by its budget (``failure_class='budget'``) continues when invoked again
        (``tide.run``, ``tide.runs.recover`` for a queued run). The caps apply at the next
        check of a run already governed by a budget; a run given its first budget (and its
        descendants) checks it from its next attempt.
        """
        check_run_id(run_id)
        given = any(v is not None for v in (usd, tokens, input_tokens, output_tokens))
        if budget is _UNSET:
            if not given:
                raise TypeError(
                    "set_budget needs the new budget: set_budget(run_id, Budget(usd=...)), "
                    "set_budget(run_id, usd=..., tokens=...), or set_budget(run_id, None) to "
                    "remove it"
                )
            caps: Budget | None = Budget(
                usd=usd, tokens=tokens, input_tokens=input_tokens, output_tokens=output_tokens
            )
        elif given:
            raise TypeError("give set_budget a Budget or caps as keywords, not both")
        else:
            caps = Budget.coerce(budget)
        text = None if caps is None else caps.to_json()
        payload = encode(
            {"budget": None if caps is None else caps.model_dump(mode="json", exclude_none=True)},
            what="event",
        )
        async with self._client._store.connection() as db:
            if not await db.set_budget(run_id=run_id, budget=text, payload=payload):
                raise RunNotFound(run_id)
        return await self.get(run_id)

    async def list(
        self,
        *,
        status: RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
    ) -> builtins.list[RunInfo]:
        if status is not None:
            try:
                status = RunStatus(status)
            except ValueError:
                valid = ", ".join(s.value for s in RunStatus)
                raise ValueError(f"unknown run status {status!r}; use one of {valid}") from None
        check_limit(limit)
        async with self._client._store.connection() as db:
            return await db.list_runs(
                status=None if status is None else status.value, workflow=workflow, limit=limit
            )

    async def steps(self, run_id: str) -> builtins.list[StepInfo]:
        check_run_id(run_id)
        async with self._client._store.connection() as db:
            steps = await db.list_steps(run_id)
            if not steps and await db.get_run(run_id) is None:
                raise RunNotFound(run_id)
        return steps

    async def events(
        self, run_id: str, after_seq: int = 0, *, limit: int | None = None
    ) -> builtins.list[Event]:
        """The run's log after ``after_seq``, in order: all of it, or the first ``limit``."""
        check_run_id(run_id)
        if limit is not None:
            check_limit(limit)
        if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
            raise ValueError(f"after_seq must be an int >= 0, got {after_seq!r}")
        async with self._client._store.connection() as db:
            events = await db.list_events(run_id, after_seq=after_seq, limit=limit)
            if not events and await db.get_run(run_id) is None:
                raise RunNotFound(run_id)
        return events

    def subscribe(
        self, run_id: str, *, after_seq: int = 0, until_end: bool = True
    ) -> AsyncIterator[Event]:
        """Iterate the run's events live: those after ``after_seq``, then each new one.

        Delivered over LISTEN/NOTIFY and caught up by seq, so none is missed or repeated. With
        ``until_end`` the iteration stops once the run completes, fails or is cancelled.
        """
        return subscribe(self._client, run_id, after_seq=after_seq, until_end=until_end)

    async def state(self, run_id: str) -> Any:
        """The run's current live state (None before its first update)."""
        check_run_id(run_id)
        async with self._client._store.connection() as db:
            found = await db.get_state(run_id)
            if found is None and await db.get_run(run_id) is None:
                raise RunNotFound(run_id)
        return None if found is None else found[1]

    async def state_versions(
        self, run_id: str, *, labeled: bool = False
    ) -> builtins.list[StateVersion]:
        """Every version of the run's live state; only the labeled snapshots if ``labeled``."""
        check_run_id(run_id)
        async with self._client._store.connection() as db:
            versions = await db.state_versions(run_id, labeled=labeled)
            if not versions and await db.get_run(run_id) is None:
                raise RunNotFound(run_id)
        return versions

    async def children(self, run_id: str) -> builtins.list[RunInfo]:
        """The run's child runs, in the order they were created."""
        check_run_id(run_id)
        async with self._client._store.connection() as db:
            edges = await db.children(run_id)
            if not edges and await db.get_run(run_id) is None:
                raise RunNotFound(run_id)
            found = [await db.get_run(child) for _, child in edges]
        return [run for run in found if run is not None]

    async def cancel(
        self, run_id: str, *, reason: str | None = None, actor: str | None = None
    ) -> RunInfo:
        """Cancel the run (one-way), and its unfinished child runs with it. Its worker stops at
        the next step or gate boundary; a gate of a cancelled run can no longer be decided.

        Returns the run as it is now: ``cancelled``, or ``completed`` if it had finished first.
        """
        check_run_id(run_id)
        payload = encode({"reason": reason, "actor": actor}, what="cancel reason")
        async with self._client._store.connection() as db:
            await db.cancel_run(run_id=run_id, reason=reason, payload=payload)
            run = await db.get_run(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    async def retry_step(self, run_id: str, step: str, *, actor: str | None = None) -> None:
        """Release a step parked for review: the next invocation of the run executes it again."""
        await self._settle(run_id, step, None, actor)

    async def complete_step(
        self, run_id: str, step: str, output: Any, *, actor: str | None = None
    ) -> None:
        """Record a parked step's result by hand: the next invocation replays ``output``."""
        await self._settle(run_id, step, encode(output, what=f"output of step {step!r}"), actor)

    async def _settle(self, run_id: str, step: str, output: str | None, actor: str | None) -> None:
        check_run_id(run_id)
        check_name(step, "step name")
        event = "step.retry_approved" if output is None else "step.completed_by_hand"
        payload = encode({"step": step, "actor": actor}, what="event")
        async with self._client._store.connection() as db:
            outcome, run, _ = await db.resolve_parked_step(
                run_id=run_id, key=step, output=output, event_type=event, payload=payload
            )
        if outcome == "no_run":
            raise RunNotFound(run_id)
        if outcome == "locked":
            assert run is not None
            raise RunLocked(run_id, host=str(run[3]).split("|")[0], pid=run[4], expires_in=run[6])
        if outcome == "no_step":
            raise StepNotFound(run_id, step)
        if outcome == "not_parked":
            raise StepNotParked(
                f"step {step!r} of run {run_id!r} already completed; there is nothing to settle"
            )
