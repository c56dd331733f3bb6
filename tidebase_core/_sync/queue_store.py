"""The store side of queues, workers, the reconciler and schedules.

A thin layer over one ``AsyncStoreConnection``: it uses the connection's ``_execute`` /
``_read`` / ``_write`` helpers, so lost connections are handled as everywhere else.

Generated from ``tidebase_core/_async/queue_store.py`` by ``tools/generate_sync.py``: edit that file, not this one.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from ..retry import MAX_BACKOFF_SECONDS, retry_base_seconds
from ..store.adapters import ExactJson, JsonText
from ..store.queue_queries import QueueQueries
from .store import Row, StoreConnection, _ConnectionLost

__all__ = ["QueueStore", "QueuedClaim", "StalledRun", "advisory_key"]


def advisory_key(*parts: str) -> int:
    """A stable signed 64-bit key for pg advisory locks."""
    digest = hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@cache
def _queries(schema: str) -> QueueQueries:
    return QueueQueries.for_schema(schema)


@dataclass(frozen=True, slots=True)
class QueuedClaim:
    run_id: str
    workflow_name: str
    attempt: int
    input: bytes | None
    last_seq: int  # the log position this attempt began at
    max_attempts: int | None
    budget_holders: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StalledRun:
    run_id: str
    workflow_name: str
    queue_name: str | None
    owner_token: uuid.UUID
    owner_host: str | None
    owner_pid: int | None
    owner_started: str | None
    expired: bool
    recovery_webhook: str | None
    input: Any


def _applied(found: Row) -> list[Row]:
    """What a transition found applied after a lost connection returns: a row, status unknown."""
    return [(None,)]


class QueueStore:
    """Queue, reconciler and schedule statements on one connection."""

    def __init__(self, db: StoreConnection) -> None:
        self.db = db
        self.schema = db._store.settings.schema
        self.q = _queries(self.schema)

    # -- enqueue ------------------------------------------------------------------------------

    def enqueue(self, params: dict[str, Any]) -> str | None:
        """Insert the queued run; None when an active run already holds the dedupe key."""
        params = dict(params)
        for key in ("input", "metadata", "payload", "budget"):
            if params.get(key) is not None:
                params[key] = (ExactJson if key == "input" else JsonText)(params[key])
        # Idempotent: a retry after a lost connection finds its own run (the id is ours) or,
        # with a dedupe key, the run holding the key.
        rows = self.db._read(self.q.enqueue, params)
        return str(rows[0][0]) if rows else None

    def active_by_dedupe(self, queue: str, dedupe_key: str) -> str | None:
        rows = self.db._read(self.q.active_by_dedupe, {"queue": queue, "dedupe_key": dedupe_key})
        return str(rows[0][0]) if rows else None

    # -- claims -------------------------------------------------------------------------------

    def claim_queued(
        self,
        *,
        queue: str,
        token: uuid.UUID,
        host: str,
        pid: int,
        started: str,
        lease: float,
        protocol_owner: str | None = None,
    ) -> QueuedClaim | None:
        """Claim the best ready run of ``queue`` within its caps (one round trip).

        ``protocol_owner``: the name of the HTTP protocol's worker taking it (``tidebase
        serve``), kept on the run and logged with its ``run.claimed`` entry.

        A queue with caps is claimed under its transaction-scoped advisory lock, and the caps
        are counted after the lock is granted, so they hold across workers.
        """
        params = {
            "queue": queue,
            "key": advisory_key("tidebase.queue", self.schema, queue),
            "token": token,
            "host": host,
            "pid": pid,
            "started": started,
            "lease": lease,
            "protocol_owner": protocol_owner,
        }
        while True:
            try:
                rows = self.db._execute(self.q.claim_queued, params)
            except _ConnectionLost:
                # Whether it committed is unknown. If it did, the run is ours under a token we
                # drop here: its lease expires and the reconciler requeues it.
                continue
            if not rows:
                return None
            r = rows[0]
            return QueuedClaim(r[0], r[1], r[2], r[3], r[4], r[5], tuple(r[6] or ()))

    def fail_queued(
        self, *, run_id: str, token: uuid.UUID, error: str, payload: str, delay: float
    ) -> str | None:
        """Record a failed attempt of a queued run: 'queued' (retry after ``delay``), 'failed'
        (max_retries), or None when the fence refused it (cancelled, taken over)."""
        rows = self.db._write(
            self.q.fail_queued,
            {
                "run_id": run_id,
                "token": token,
                "error": JsonText(error),
                "payload": JsonText(payload),
                "delay": delay,
            },
            recover=_applied,
        )
        return self._status(run_id, rows)

    def _status(self, run_id: str, rows: list[Row]) -> str | None:
        """The status a fenced transition returned; after a lost connection found it applied,
        the run's status now (None: the fence refused it)."""
        if not rows:
            return None
        if rows[0][0] is not None:
            return str(rows[0][0])
        run = self.db.get_run(run_id)
        return None if run is None else str(run.status)

    # -- queues -------------------------------------------------------------------------------

    def upsert_queue(
        self,
        *,
        name: str,
        concurrency: int | None,
        rate: int | None,
        invoke_url: str | None,
    ) -> None:
        self.db._read(
            self.q.upsert_queue,
            {"name": name, "concurrency": concurrency, "rate": rate, "invoke_url": invoke_url},
        )

    def list_queues(self) -> list[Row]:
        return self.db._read(self.q.list_queues, {})

    # -- reconciler ---------------------------------------------------------------------------

    def try_lock(self, name: str) -> bool:
        rows = self.db._read(self.q.reconciler_lock, {"key": advisory_key(name, self.schema)})
        return bool(rows and rows[0][0])

    def unlock(self, name: str) -> None:
        self.db._read(self.q.reconciler_unlock, {"key": advisory_key(name, self.schema)})

    def stalled_runs(
        self,
        *,
        host: str,
        workflows: list[str] | None = None,
        queued: bool | None = None,
        actionable: bool = False,
        limit: int = 200,
    ) -> list[StalledRun]:
        rows = self.db._read(
            self.q.stalled_runs,
            {
                "host": host,
                "workflows": workflows,
                "queued": queued,
                "actionable": actionable,
                "limit": limit,
            },
        )
        return [StalledRun(*r) for r in rows]

    def idle_plain_runs(self, workflows: list[str], limit: int = 50) -> list[Row]:
        return self.db._read(self.q.idle_plain_runs, {"workflows": workflows, "limit": limit})

    def requeue_stalled(self, *, run_id: str, token: uuid.UUID, reason: str) -> str | None:
        rows = self.db._write(
            self.q.requeue_stalled,
            {
                "run_id": run_id,
                "token": token,
                "reason": reason,
                "base": retry_base_seconds(),
                "cap": MAX_BACKOFF_SECONDS,
            },
            recover=_applied,
        )
        return self._status(run_id, rows)

    def requeue_pending(self) -> list[str]:
        rows = self.db._read(self.q.requeue_pending, {})
        return [str(r[0]) for r in rows]

    def cancel_past_deadline(self) -> list[str]:
        rows = self.db._read(self.q.cancel_past_deadline, {})
        return [str(r[0]) for r in rows]

    def prune_claims(self) -> None:
        self.db._read(self.q.prune_claims, {})

    def last_webhook_age(self, run_id: str, kind: str) -> float | None:
        rows = self.db._read(self.q.last_webhook_age, {"run_id": run_id, "kind": kind})
        return None if not rows or rows[0][0] is None else float(rows[0][0])

    def record_webhook(
        self, *, run_id: str, kind: str, url: str, status_code: int | None, error: str | None
    ) -> None:
        self.db._write(
            self.q.record_webhook,
            {
                "run_id": run_id,
                "kind": kind,
                "url": url,
                "status_code": status_code,
                "error": error,
            },
        )

    def list_webhooks(self, run_id: str) -> list[Row]:
        return self.db._read(self.q.list_webhooks, {"run_id": run_id})

    def push_ready(self, limit: int = 100) -> list[Row]:
        return self.db._read(self.q.push_ready, {"limit": limit})

    def recover_run(self, *, run_id: str, reason: str, void_token: uuid.UUID | None) -> bool:
        rows = self.db._write(
            self.q.recover_run,
            {"run_id": run_id, "reason": reason, "void_token": void_token},
            recover=_applied,
        )
        return bool(rows)

    def create_run(self, params: dict[str, Any]) -> bool:
        params = dict(params)
        for key in ("input", "metadata", "budget"):
            if params.get(key) is not None:
                params[key] = (ExactJson if key == "input" else JsonText)(params[key])
        return bool(self.db._read(self.q.create_run, params))

    def run_owner(self, run_id: str) -> Row | None:
        rows = self.db._read(self.q.run_owner, {"run_id": run_id})
        return rows[0] if rows else None

    def set_recovery_webhook(self, run_id: str, url: str) -> None:
        self.db._read(self.q.set_recovery_webhook, {"run_id": run_id, "url": url})

    def recovery_webhook(self, run_id: str) -> str | None:
        rows = self.db._read(self.q.recovery_webhook, {"run_id": run_id})
        return None if not rows else rows[0][0]

    # -- schedules ----------------------------------------------------------------------------

    def upsert_schedule(self, params: dict[str, Any]) -> Row:
        params = dict(params)
        if params.get("input") is not None:
            params["input"] = ExactJson(params["input"])
        rows = self.db._read(self.q.upsert_schedule, params)
        return rows[0]

    def list_schedules(self) -> list[Row]:
        return self.db._read(self.q.list_schedules, {})

    def delete_schedule(self, name: str) -> bool:
        return bool(self.db._read(self.q.delete_schedule, {"name": name}))

    def fire_due_schedules(
        self, *, now: datetime, next_after: Any, enqueue_params: Any, limit: int = 100
    ) -> list[tuple[str, datetime, str | None]]:
        """Fire every due schedule once: in one transaction per tick, lock the due rows (a racing
        reconciler skips them), enqueue each fire with the dedupe key ``sched:<name>:<time>``,
        and move ``next_fire_at`` on by compare-and-set. ``next_after(cron, t)`` gives the next
        fire time; ``enqueue_params(row, fire_time)`` the enqueue statement's parameters.
        Returns ``(schedule name, fire time, run id or None if deduplicated)``."""
        fired: list[tuple[str, datetime, str | None]] = []
        try:
            with self.db._conn.transaction():
                due = self.db._execute(self.q.due_schedules, {"now": now, "limit": limit})
                for row in due:
                    name, cron, fire_time = row[0], row[1], row[5]
                    advanced = self.db._execute(
                        self.q.advance_schedule,
                        {"name": name, "fired": fire_time, "next": next_after(cron, now)},
                    )
                    if not advanced:
                        continue
                    params = dict(enqueue_params(row, fire_time))
                    for key in ("input", "metadata", "payload", "budget"):
                        if params.get(key) is not None:
                            params[key] = (ExactJson if key == "input" else JsonText)(params[key])
                    rows = self.db._execute(self.q.enqueue, params)
                    fired.append((name, fire_time, str(rows[0][0]) if rows else None))
        except _ConnectionLost:
            return []  # rolled back or committed: the next tick sees which (the CAS is exact)
        return fired
