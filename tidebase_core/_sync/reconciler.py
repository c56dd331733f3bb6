"""The reconciler: the one tick that keeps runs moving when nobody is watching.

Every worker (and ``tidebase serve``) ticks it; a session advisory lock makes one tick run at a
time across all of them. A tick: cancels runs past their deadline; requeues queued runs whose
lease expired or whose owner died on this host; fires recovery webhooks for stalled runs that
have one (signed, every attempt recorded, throttled); returns queued runs decided at a gate to
their queue; enqueues due cron schedules; and POSTs ``run.invoke`` for push queues.

Exactness does not rest on the lock alone: requeues are fenced on the dead owner's token, a
schedule fire is a compare-and-set on its fire time, and enqueues carry a dedupe key.

Generated from ``tidebase_core/_async/reconciler.py`` by ``tools/generate_sync.py``: edit that file, not this one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._compat import run_blocking
from ..owner import process_is_gone, this_host
from ..queue_models import next_fire_time
from ..serialization import decode_json, encode
from ..webhooks import deliver
from .queue_store import QueueStore
from .queues import enqueue_params

if TYPE_CHECKING:
    from .client import Tidebase

__all__ = ["Reconciler", "TickReport"]

log = logging.getLogger("tidebase.reconciler")

LOCK_NAME = "tidebase.reconciler"


@dataclass
class TickReport:
    """What one tick did (for logs and tests)."""

    cancelled: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    webhooks: list[tuple[str, int | None]] = field(default_factory=list)
    fired: list[tuple[str, datetime, str | None]] = field(default_factory=list)
    dispatched: list[str] = field(default_factory=list)


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None


class Reconciler:
    """``clock`` (a callable returning an aware UTC datetime) drives cron: tests inject one."""

    def __init__(
        self,
        client: Tidebase,
        *,
        clock: Callable[[], datetime] | None = None,
        webhook_secret: str | None = None,
        webhook_every_s: float | None = None,
    ) -> None:
        self.client = client
        self.clock = clock or (lambda: datetime.now(UTC))
        self._secret = webhook_secret
        self.webhook_every_s = (
            webhook_every_s
            if webhook_every_s is not None
            else _env_seconds("TIDEBASE_WEBHOOK_THROTTLE_SECONDS", 60.0)
        )

    def secret(self) -> str | None:
        return self._secret or os.environ.get("TIDEBASE_WEBHOOK_SECRET") or None

    def tick(self, now: datetime | None = None) -> TickReport | None:
        """One pass; None when another process holds the tick."""
        now = now or self.clock()
        with self.client._store.connection() as db:
            qs = QueueStore(db)
            if not qs.try_lock(LOCK_NAME):
                return None
            try:
                return self._tick(qs, now)
            finally:
                qs.unlock(LOCK_NAME)

    def _tick(self, qs: QueueStore, now: datetime) -> TickReport:
        report = TickReport()
        report.cancelled = qs.cancel_past_deadline()
        for run_id in report.cancelled:
            log.info("cancelled run %s: past its deadline", run_id)
        for run in qs.stalled_runs(host=this_host(), actionable=True):
            gone = process_is_gone(run.owner_host, run.owner_pid, run.owner_started)
            if not (run.expired or gone):
                continue
            reason = "owner_died" if gone else "lease_expired"
            if run.queue_name is not None:
                status = qs.requeue_stalled(run_id=run.run_id, token=run.owner_token, reason=reason)
                if status == "queued":
                    report.requeued.append(run.run_id)
                    log.info("requeued run %s (%s): %s", run.run_id, run.workflow_name, reason)
                elif status == "failed":
                    report.failed.append(run.run_id)
                    log.error("gave up on run %s: its worker died too often", run.run_id)
            if run.recovery_webhook:
                code = self._recovery_webhook(
                    qs, run.run_id, run.workflow_name, run.input, run.recovery_webhook, reason
                )
                if code is not False:
                    report.webhooks.append((run.run_id, code))
        report.requeued += qs.requeue_pending()
        report.fired = qs.fire_due_schedules(
            now=now, next_after=next_fire_time, enqueue_params=self._schedule_params
        )
        for name, fire_time, fired_run in report.fired:
            log.info("schedule %s fired for %s: run %s", name, fire_time.isoformat(), fired_run)
        report.dispatched = self._dispatch_push(qs)
        qs.prune_claims()
        return report

    @staticmethod
    def _schedule_params(row: Any, fire_time: datetime) -> dict[str, Any]:
        name, _cron, workflow, queue, _enabled, _next, input, max_attempts = row[:8]
        fire_iso = fire_time.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return enqueue_params(
            workflow,
            queue=queue,
            input=None if input is None else decode_json(input),
            dedupe_key=f"sched:{name}:{fire_iso}",
            max_attempts=max_attempts,
            metadata={"schedule": name, "fire_time": fire_iso},
        )

    def _recovery_webhook(
        self,
        qs: QueueStore,
        run_id: str,
        workflow: str,
        input: Any,
        url: str,
        reason: str,
        *,
        throttled: bool = True,
    ) -> int | bool | None:
        """POST a signed ``run.resume`` (the Tidebase protocol's recovery webhook, which the
        official SDKs' handlers accept) unless one went out within the throttle window. The run's
        log says so: ``recovery.started``, then ``recovery.delivered`` or ``recovery.failed``.
        Returns the status code (None: no answer), or False when throttled."""
        age = qs.last_webhook_age(run_id, "run.recover") if throttled else None
        if age is not None and age < self.webhook_every_s:
            return False
        _log(qs, run_id, "recovery.started", {"reason": reason, "webhookUrl": url})
        code = self._send(
            qs,
            run_id,
            "run.recover",
            url,
            {
                "type": "run.resume",
                "runId": run_id,
                "workflowName": workflow,
                "reason": reason,
                "input": None if input is None else decode_json(input),
            },
        )
        delivered = code is not None and 200 <= code < 300
        _log(
            qs,
            run_id,
            "recovery.delivered" if delivered else "recovery.failed",
            {"httpStatus": code},
        )
        return code

    def _send(
        self, qs: QueueStore, run_id: str, kind: str, url: str, payload: dict[str, Any]
    ) -> int | None:
        secret = self.secret()
        code: int | None
        error: str | None
        if secret is None:
            code, error = None, "not sent: TIDEBASE_WEBHOOK_SECRET is not set"
        else:
            code, error = run_blocking(deliver, url, payload, secret)
        qs.record_webhook(run_id=run_id, kind=kind, url=url, status_code=code, error=error)
        if error:
            log.warning("%s webhook for run %s to %s: %s", kind, run_id, url, error)
        else:
            log.info("%s webhook for run %s delivered to %s (%s)", kind, run_id, url, code)
        return code

    def _dispatch_push(self, qs: QueueStore) -> list[str]:
        """At least once: each ready run of a push queue is POSTed, and again after the
        redelivery horizon while it stays queued (the receiver's claim is idempotent)."""
        sent = []
        for run_id, workflow, queue, url in qs.push_ready():
            age = qs.last_webhook_age(run_id, "run.invoke")
            if age is not None and age < self.webhook_every_s:
                continue
            self._send(
                qs,
                run_id,
                "run.invoke",
                url,
                {"type": "run.invoke", "runId": run_id, "workflowName": workflow, "queue": queue},
            )
            sent.append(run_id)
        return sent


def _log(qs: QueueStore, run_id: str, type: str, payload: dict[str, Any]) -> None:
    """An entry in the run's log written on the run's behalf (not fenced: no worker owns it)."""
    qs.db.append_event(run_id=run_id, type=type, payload=encode(payload, what="event"))
