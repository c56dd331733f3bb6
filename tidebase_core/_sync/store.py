"""The store: the connection pool, and every statement the engine runs.

This is the async source; ``tidebase_core/_sync/store.py`` is generated from it by
``tools/generate_sync.py``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import Connection
from psycopg_pool import ConnectionPool, PoolTimeout

from .._compat import Lock, run_blocking, sleep
from ..errors import DatabaseUnavailable
from ..models import Event, RunInfo, StepInfo
from ..replay import Checkpoint, ResumeDecision
from ..serialization import decode_json
from ..settings import Settings
from ..store.adapters import ADAPTERS, JsonText
from ..store.migrate import connect_and_migrate
from ..store.queries import Queries
from ..store.records import Claim, FenceState

__all__ = ["Store", "StoreConnection"]

Row = tuple[Any, ...]

# How long an operation waits for a lost database to come back before giving up.
RECONNECT_TIMEOUT = 60.0


class _ConnectionLost(Exception):
    """The connection broke while a statement was in flight; whether it ran is unknown."""


class Store:
    """Owns the pool; hands out connections wrapped with the statements that use them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.q = Queries.for_schema(settings.schema)
        self.url: str | None = settings.database_url
        self._pool: ConnectionPool[Connection[Row]] | None = None
        self._lock = Lock()

    def open(self) -> None:
        if self._pool is not None:
            return
        with self._lock:
            if self._pool is not None:
                return
            url, _ = run_blocking(
                connect_and_migrate, self.settings, apply=self.settings.auto_migrate
            )
            pool: ConnectionPool[Connection[Row]] = ConnectionPool(
                url,
                min_size=1,
                max_size=self.settings.max_connections,
                kwargs={
                    "autocommit": True,
                    "context": ADAPTERS,
                    "application_name": "tidebase",
                },
                open=False,
                name="tidebase",
                timeout=RECONNECT_TIMEOUT,
            )
            pool.open()
            self.url = url
            self._pool = pool

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    @property
    def closed(self) -> bool:
        return self._pool is None

    @contextmanager
    def connection(self) -> Iterator[StoreConnection]:
        """One pooled connection for a span of work (a whole run holds one)."""
        self.open()
        db = StoreConnection(self, self._getconn())
        try:
            yield db
        finally:
            self._putconn(db._conn)

    def _getconn(self) -> Connection[Row]:
        pool = self._pool
        if pool is None:
            raise DatabaseUnavailable("the Tidebase client is closed")
        try:
            return pool.getconn()
        except PoolTimeout as exc:
            raise DatabaseUnavailable(
                f"no connection to Postgres ({self.settings.safe_url}) within "
                f"{RECONNECT_TIMEOUT:.0f}s: the database is down or every one of the "
                f"{self.settings.max_connections} pooled connections is busy "
                "(raise max_connections)"
            ) from exc

    def _putconn(self, conn: Connection[Row]) -> None:
        pool = self._pool
        if pool is None:
            conn.close()
        else:
            pool.putconn(conn)


class StoreConnection:
    """A pooled connection plus the statements; reconnects when the database comes back."""

    def __init__(self, store: Store, conn: Connection[Row]) -> None:
        self._store = store
        self._conn = conn
        self.q = store.q

    # -- plumbing ---------------------------------------------------------------------------

    def _execute(self, query: str, params: dict[str, Any] | Sequence[Any]) -> list[Row]:
        """Run one statement; a lost connection raises ``_ConnectionLost`` after reconnecting."""
        try:
            cur = self._conn.execute(query, params)
            return cur.fetchall() if cur.description is not None else []
        except psycopg.OperationalError as exc:
            if not (self._conn.broken or self._conn.closed):
                raise
            self._reconnect(exc)
            raise _ConnectionLost from exc

    def _read(self, query: str, params: dict[str, Any] | Sequence[Any]) -> list[Row]:
        """An idempotent statement: retried until the database answers again."""
        while True:
            try:
                return self._execute(query, params)
            except _ConnectionLost:
                continue

    def _reconnect(self, cause: BaseException) -> None:
        deadline = time.monotonic() + RECONNECT_TIMEOUT
        self._store._putconn(self._conn)  # the pool discards a broken connection
        delay = 0.05
        while True:
            try:
                self._conn = self._store._getconn()
                return
            except DatabaseUnavailable:
                if time.monotonic() > deadline:
                    raise DatabaseUnavailable(
                        f"lost the connection to Postgres ({self._store.settings.safe_url}) "
                        f"and it did not come back within {RECONNECT_TIMEOUT:.0f}s: {cause}"
                    ) from cause
            sleep(delay)
            delay = min(delay * 2, 2.0)

    # -- runs: claim, finish ------------------------------------------------------------------

    def claim_run(
        self,
        *,
        run_id: str,
        workflow: str,
        input: str | None,
        input_hash: str,
        check_input: bool,
        metadata: str | None,
        token: uuid.UUID,
        host: str,
        pid: int,
        started: str,
        lease: float,
        void_token: uuid.UUID | None = None,
    ) -> Claim | None:
        params = {
            "run_id": run_id,
            "workflow": workflow,
            "input": None if input is None else JsonText(input),
            "input_hash": input_hash,
            "check_input": check_input,
            "want_input": not check_input,
            "metadata": None if metadata is None else JsonText(metadata),
            "token": token,
            "host": host,
            "pid": pid,
            "started": started,
            "lease": lease,
            "void_token": void_token,
        }
        while True:
            try:
                rows = self._execute(self.q.claim_run, params)
            except _ConnectionLost:
                # If the claim landed, our token owns the run: claiming again with it as the
                # "void" token takes it back (one more attempt, nothing else lost).
                params["void_token"] = token
                continue
            return Claim.from_row(rows[0]) if rows else None

    def load_checkpoints(self, run_id: str) -> dict[str, Checkpoint]:
        rows = self._read(self.q.load_checkpoints, {"run_id": run_id})
        return {
            r[0]: Checkpoint(
                key=r[0],
                status=r[1],
                input_hash=r[2],
                output=None if r[3] is None else r[3].decode(),
                error=None if r[4] is None else r[4].decode(),
                decision=None if r[5] is None else ResumeDecision(r[5]),
                attempt=r[6],
            )
            for r in rows
        }

    def write_checkpoint(
        self,
        *,
        run_id: str,
        token: uuid.UUID,
        key: str,
        input_hash: str,
        output: str,
        attempt: int,
        decision: ResumeDecision,
        idempotency_key: str | None,
        replaces: bool = False,
    ) -> bool:
        """The step's one round trip. False when the fence refused it (lease lost, cancelled).

        ``replaces``: the key already has a row (an earlier failed try or an intent record).
        """
        params = {
            "run_id": run_id,
            "token": token,
            "key": key,
            "input_hash": input_hash,
            "output": JsonText(output),
            "attempt": attempt,
            "decision": decision.value,
            "idempotency_key": idempotency_key,
        }
        while True:
            try:
                query = self.q.rewrite_checkpoint if replaces else self.q.write_checkpoint
                return bool(self._execute(query, params))
            except _ConnectionLost:
                # Did the write commit before the connection dropped?
                found = self._read(self.q.get_step, {"run_id": run_id, "key": key})
                if found and found[0][0] == "completed" and found[0][1] == input_hash:
                    return True

    def write_step_started(
        self,
        *,
        run_id: str,
        token: uuid.UUID,
        key: str,
        input_hash: str,
        attempt: int,
        decision: ResumeDecision,
        idempotency_key: str | None,
        payload: str,
    ) -> bool:
        rows = self._write_once(
            self.q.write_step_started,
            {
                "run_id": run_id,
                "token": token,
                "key": key,
                "input_hash": input_hash,
                "attempt": attempt,
                "decision": decision.value,
                "idempotency_key": idempotency_key,
                "payload": JsonText(payload),
            },
        )
        return bool(rows)

    def write_step_failed(
        self,
        *,
        run_id: str,
        token: uuid.UUID,
        key: str,
        input_hash: str,
        error: str,
        attempt: int,
        decision: ResumeDecision,
        idempotency_key: str | None,
        payload: str,
    ) -> bool:
        rows = self._write_once(
            self.q.write_step_failed,
            {
                "run_id": run_id,
                "token": token,
                "key": key,
                "input_hash": input_hash,
                "error": JsonText(error),
                "attempt": attempt,
                "decision": decision.value,
                "idempotency_key": idempotency_key,
                "payload": JsonText(payload),
            },
        )
        return bool(rows)

    def complete_run(
        self, *, run_id: str, token: uuid.UUID, attempt: int, result: str, payload: str
    ) -> bool:
        params = {
            "run_id": run_id,
            "token": token,
            "result": JsonText(result),
            "payload": JsonText(payload),
        }
        while True:
            try:
                return bool(self._execute(self.q.complete_run, params))
            except _ConnectionLost:
                run = self.get_run(run_id)
                if run is not None and run.status == "completed" and run.attempt == attempt:
                    return True

    def fail_run(
        self,
        *,
        run_id: str,
        token: uuid.UUID,
        error: str,
        failure_class: ResumeDecision | None,
        payload: str,
    ) -> bool:
        rows = self._write_once(
            self.q.fail_run,
            {
                "run_id": run_id,
                "token": token,
                "error": JsonText(error),
                "failure_class": None if failure_class is None else failure_class.value,
                "payload": JsonText(payload),
            },
        )
        return bool(rows)

    def release_run(self, *, run_id: str, token: uuid.UUID) -> None:
        self._read(self.q.release_run, {"run_id": run_id, "token": token})

    def fence_state(self, run_id: str) -> FenceState | None:
        rows = self._read(self.q.fence_state, {"run_id": run_id})
        return FenceState(*rows[0]) if rows else None

    def _write_once(self, query: str, params: dict[str, Any]) -> list[Row]:
        """A write whose double application is harmless (a status upsert): retried once more."""
        try:
            return self._execute(query, params)
        except _ConnectionLost:
            return self._read(query, params)

    # -- leases -------------------------------------------------------------------------------

    def renew_leases(self, *, lease: float, held: Sequence[tuple[str, uuid.UUID]]) -> set[str]:
        """Extend every lease in ``held``; returns the run ids still ours."""
        rows = self._read(
            self.q.renew_leases,
            {
                "lease": lease,
                "run_ids": [run_id for run_id, _ in held],
                "tokens": [token for _, token in held],
            },
        )
        return {r[0] for r in rows}

    def lease_states(self, run_ids: Sequence[str]) -> dict[str, FenceState]:
        rows = self._read(self.q.lease_states, {"run_ids": list(run_ids)})
        return {r[0]: FenceState(r[1], r[2], r[3]) for r in rows}

    # -- introspection and control ------------------------------------------------------------

    def get_run(self, run_id: str) -> RunInfo | None:
        rows = self._read(self.q.get_run, {"run_id": run_id})
        return _run_info(rows[0]) if rows else None

    def list_runs(self, *, status: str | None, workflow: str | None, limit: int) -> list[RunInfo]:
        rows = self._read(
            self.q.list_runs, {"status": status, "workflow": workflow, "limit": limit}
        )
        return [_run_info(r) for r in rows]

    def list_steps(self, run_id: str) -> list[StepInfo]:
        rows = self._read(self.q.list_steps, {"run_id": run_id})
        return [
            StepInfo(
                name=r[0],
                status=r[1],
                input_hash=r[2],
                output=decode_json(r[3]),
                error=decode_json(r[4]),
                attempt=r[5],
                resume_decision=r[6],
                seq=r[7],
                idempotency_key=r[8],
                updated_at=r[9],
            )
            for r in rows
        ]

    def list_events(self, run_id: str, *, after_seq: int, limit: int) -> list[Event]:
        rows = self._read(
            self.q.list_events, {"run_id": run_id, "after_seq": after_seq, "limit": limit}
        )
        return [
            Event(seq=r[0], type=r[1], payload=decode_json(r[2]), created_at=r[3]) for r in rows
        ]

    def cancel_run(self, *, run_id: str, reason: str | None, payload: str) -> bool:
        rows = self._write_once(
            self.q.cancel_run,
            {"run_id": run_id, "reason": reason, "payload": JsonText(payload)},
        )
        return bool(rows)

    def resolve_parked_step(
        self, *, run_id: str, key: str, output: str | None, event_type: str, payload: str
    ) -> tuple[str, Row | None, Row | None]:
        """Operator action on a parked step, all or nothing in one transaction.

        With ``output`` None the step is released to run again; otherwise it is completed with
        that output. Returns ``("ok" | "no_run" | "locked" | "no_step" | "not_parked", run
        row, step row)`` so the caller can word the error.
        """
        with self._conn.transaction():
            run = self._execute(self.q.lock_run, {"run_id": run_id})
            if not run:
                return "no_run", None, None
            status, token, expired = run[0][0], run[0][1], run[0][2]
            if status == "running" and token is not None and not expired:
                return "locked", run[0], None
            step = self._execute(self.q.get_step, {"run_id": run_id, "key": key})
            if not step:
                return "no_step", run[0], None
            if step[0][0] == "completed":
                return "not_parked", run[0], step[0]
            if output is None:
                self._execute(self.q.approve_step_retry, {"run_id": run_id, "key": key})
            else:
                self._execute(
                    self.q.resolve_step, {"run_id": run_id, "key": key, "output": JsonText(output)}
                )
            self._execute(
                self.q.append_event,
                {"run_id": run_id, "type": event_type, "payload": JsonText(payload)},
            )
            return "ok", run[0], step[0]


def _run_info(r: Row) -> RunInfo:
    return RunInfo(
        run_id=r[0],
        workflow_name=r[1],
        status=r[2],
        input=decode_json(r[3]),
        result=decode_json(r[4]),
        error=decode_json(r[5]),
        attempt=r[6],
        failure_class=r[7],
        metadata=decode_json(r[8]),
        created_at=r[9],
        updated_at=r[10],
        completed_at=r[11],
        lease_expires_at=r[12],
    )
