"""The worker: pull queued runs and execute them with the workflows registered by name.

``tide.work(queues, concurrency=N, stop=...)`` runs ``N`` slots, each claiming one run at a
time (``FOR UPDATE SKIP LOCKED`` under the queue's advisory lock, within its caps) and executing
it through the engine's own path (``AsyncTidebase._execute_claimed``: lease, heartbeat, fenced
checkpoints). One more slot does housekeeping: the reconciler's tick, and recovery of plain runs
of this process's workflows whose owner died. ``stop`` set (SIGTERM in ``tidebase worker``)
drains: slots finish the run they hold, claim nothing more, and return.

Generated from ``tidebase_core/_async/worker.py`` by ``tools/generate_sync.py``: edit that file, not this one.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._compat import gather, resolve, sleep
from .._run_base import check_name, error_payload
from ..errors import (
    BudgetExceeded,
    ConfigurationError,
    GatePending,
    LeaseLost,
    RunCancelled,
    RunLocked,
    StepFailed,
    TidebaseError,
)
from ..owner import Owner, let_go, process_is_gone, this_host
from ..registry import UnknownWorkflow, lookup, registered_names
from ..retry import backoff_seconds
from ..serialization import decode_json, encode
from ..store.records import Claim
from .queue_store import QueuedClaim, QueueStore
from .reconciler import Reconciler

if TYPE_CHECKING:
    from .client import Tidebase

__all__ = ["Worker"]

log = logging.getLogger("tidebase.worker")


def _stopped(stop: Any) -> bool:
    if stop is None:
        return False
    is_set = getattr(stop, "is_set", None)
    if is_set is not None:
        return bool(is_set())
    return bool(stop())


class Worker:
    """A pull loop over ``queues``; see the module docstring."""

    def __init__(
        self,
        client: Tidebase,
        queues: Sequence[str] | str = ("default",),
        *,
        concurrency: int = 1,
        stop: Any = None,
        poll_s: float = 0.2,
        reconcile_s: float = 1.0,
        reconcile: bool = True,
    ) -> None:
        if isinstance(queues, str):
            queues = [queues]
        if not queues:
            raise ValueError("work() needs at least one queue name, e.g. queues=['default']")
        self.queues = [check_name(q, "queue name") for q in queues]
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        needed = concurrency + (1 if reconcile else 0)
        if needed > client.settings.max_connections:
            raise ConfigurationError(
                f"work(concurrency={concurrency}) holds {needed} pooled connections at once but "
                f"the client has max_connections={client.settings.max_connections}; create it "
                f"with Tidebase(max_connections={needed + 2}) or lower the concurrency"
            )
        if stop is not None and not (callable(stop) or hasattr(stop, "is_set")):
            raise TypeError("stop must be an Event (is_set()) or a callable returning bool")
        self.client = client
        self.concurrency = concurrency
        self.stop = stop
        self.poll_s = poll_s
        self.reconcile_s = reconcile_s
        self.reconcile = reconcile
        self.reconciler = Reconciler(client)
        self._next_queue = 0
        self.claimed = 0

    def stopped(self) -> bool:
        return _stopped(self.stop)

    def run(self) -> None:
        """Work until ``stop`` is set; every slot finishes its current run first."""
        log.info(
            "worker pid %d on queues %s, concurrency %d, workflows %s",
            os.getpid(),
            ",".join(self.queues),
            self.concurrency,
            ",".join(registered_names()) or "none",
        )
        calls = [self._slot for _ in range(self.concurrency)]
        if self.reconcile:
            calls.append(self._housekeeping)
        outcomes = gather(calls, len(calls))
        log.info("worker pid %d drained and stopped", os.getpid())
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _slot(self) -> None:
        while not self.stopped():
            if not self.work_once():
                sleep(self.poll_s)

    def _housekeeping(self) -> None:
        while not self.stopped():
            try:
                self.reconciler.tick()
                self.recover_plain_runs()
            except TidebaseError as exc:
                log.warning("housekeeping: %s", exc)
            # Short sleeps, so a stop request is seen quickly.
            until = time.monotonic() + self.reconcile_s
            while not self.stopped() and time.monotonic() < until:
                sleep(min(self.poll_s, self.reconcile_s))

    def work_once(self) -> bool:
        """Claim one ready run from the queues (round robin) and execute it; False if none."""
        n = len(self.queues)
        start = self._next_queue
        self._next_queue = (start + 1) % n
        for i in range(n):
            queue = self.queues[(start + i) % n]
            owner = Owner.new()
            try:
                with self.client._store.connection() as db:
                    claim = QueueStore(db).claim_queued(
                        queue=queue,
                        token=owner.token,
                        host=owner.host,
                        pid=owner.pid,
                        started=owner.started,
                        lease=self.client.settings.lease_seconds,
                    )
                    if claim is None:
                        continue
                    self.claimed += 1
                    self._execute(db, queue, owner, claim)
                    return True
            finally:
                let_go(owner.token)  # finished (or never claimed): a lease left behind is void
        return False

    def _execute(self, db: Any, queue: str, owner: Owner, claim: QueuedClaim) -> None:
        run_id, name = claim.run_id, claim.workflow_name
        log.info(
            "claimed run %s (%s) from queue %s, attempt %d", run_id, name, queue, claim.attempt
        )
        try:
            invoke: Any = lookup(name).invoke
        except UnknownWorkflow as exc:
            error = exc

            def invoke(run: Any, input: Any) -> Any:
                raise error  # a failed attempt like any other: another worker may know it

        outcome: dict[str, str | None] = {}

        def guarded(run: Any, input: Any) -> Any:
            try:
                return resolve(invoke(run, input))
            except (GatePending, RunCancelled, LeaseLost, StepFailed, BudgetExceeded):
                raise  # the engine's own outcomes: it records them (a budget: not retried)
            except Exception as exc:
                # Retry or give up in the same fenced statement that records the failure.
                outcome["status"] = self._fail_attempt(run, claim, exc)
                raise

        # A first claim has no checkpoints to load (enqueue writes none): skip that round trip.
        engine_claim = Claim(
            True,
            claim.attempt,
            claim.attempt == 1,
            claim.input,
            claim.last_seq,
            budget_holders=claim.budget_holders,
        )
        try:
            self.client._execute_claimed(
                db, run_id, name, owner, engine_claim, guarded, decode_json(claim.input)
            )
        except GatePending:
            log.info("run %s waits at a gate; it goes back to queue %s when decided", run_id, queue)
        except RunCancelled as exc:
            log.info("run %s was cancelled (%s)", run_id, exc.reason)
        except LeaseLost:
            log.warning("run %s: lease lost to another worker; left to it", run_id)
        except Exception as exc:
            self._log_failure(claim, exc, outcome.get("status"))
        else:
            log.info("finished run %s (%s), attempt %d", run_id, name, claim.attempt)

    def _fail_attempt(self, run: Any, claim: QueuedClaim, exc: BaseException) -> str | None:
        error = error_payload(exc)
        return QueueStore(run._db).fail_queued(
            run_id=claim.run_id,
            token=run._execution.token,
            error=encode(error, what="run error"),
            payload=encode(
                {"error": {"type": error["type"], "message": error["message"]}}, what="event"
            ),
            delay=backoff_seconds(claim.attempt),
        )

    def _log_failure(self, claim: QueuedClaim, exc: BaseException, status: str | None) -> None:
        kind = f"{type(exc).__name__}: {exc}"
        if status == "queued":
            log.warning(
                "run %s failed attempt %d/%d (%s); retrying in %.1fs",
                claim.run_id,
                claim.attempt,
                claim.max_attempts or 1,
                kind,
                backoff_seconds(claim.attempt),
            )
        elif status == "failed":
            log.error(
                "gave up on run %s after %d attempt(s) (max_retries): %s",
                claim.run_id,
                claim.attempt,
                kind,
            )
        else:
            log.error(
                "run %s failed (%s); not retried (its failure needs a person)", claim.run_id, kind
            )

    def recover_plain_runs(self) -> int:
        """Re-invoke plain (not enqueued) runs of this process's workflows that nobody drives:
        the owner died on this host, the lease expired, or the run is idle ('pending').
        Returns how many were resumed."""
        names = registered_names()
        if not names:
            return 0
        with self.client._store.connection() as db:
            qs = QueueStore(db)
            stalled = qs.stalled_runs(host=this_host(), workflows=names, queued=False)
            idle = qs.idle_plain_runs(names)
        candidates = [
            (s.run_id, s.workflow_name)
            for s in stalled
            if s.expired or process_is_gone(s.owner_host, s.owner_pid, s.owner_started)
        ] + [(str(r[0]), str(r[1])) for r in idle]
        resumed = 0
        for run_id, name in candidates:
            if self.stopped():
                break
            entry = lookup(name)
            log.info("recovering plain run %s (%s): its worker is gone", run_id, name)
            try:
                self.client.run(name, entry.invoke, run_id=run_id, output_type=entry.output_type)
                resumed += 1
                log.info("finished recovered run %s (%s)", run_id, name)
            except RunLocked:
                continue  # another worker got there first
            except Exception as exc:
                log.warning(
                    "recovered run %s (%s) ended with %s: %s", run_id, name, type(exc).__name__, exc
                )
        return resumed
