"""The store: the connection pool, and every statement the engine runs.

This is the async source; ``tidebase_core/_sync/store.py`` is generated from it by
``tools/generate_sync.py``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection, AsyncCursor
from psycopg.pq import ExecStatus
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .._acompat import Lock, run_blocking, shielded, sleep
from .._run_base import UsageInput
from ..budgets import Budget, BudgetSpend, BudgetStatus
from ..errors import ConnectionReleased, DatabaseUnavailable
from ..models import (
    AttemptOutcome,
    Event,
    GateInfo,
    RunInfo,
    StateVersion,
    StepInfo,
    UsageRecord,
)
from ..replay import Checkpoint, ResumeDecision
from ..serialization import decode_json, encode
from ..settings import Settings, redact_dsn
from ..store.adapters import ADAPTERS, ExactJson, JsonText
from ..store.migrate import connect_and_migrate
from ..store.outage import Outage, no_connection
from ..store.queries import Queries, channel, listen_statement
from ..store.records import (
    NO_NOTE,
    Claim,
    ClaimRequest,
    FenceState,
    GateRow,
    Probe,
    StateNote,
    state_version,
)

__all__ = ["AsyncRunListener", "AsyncStore", "AsyncStoreConnection"]

Row = tuple[Any, ...]

TUPLES_OK = ExecStatus.TUPLES_OK
# A pooled connection idle longer than this is probed before it is handed out (a restart).
RECHECK_IDLE_SECONDS = 1.0
# Callers waiting for a busy pool ask "is the database away?" by connecting once; at most one
# such probe per this many seconds for the whole store (waiters share its answer): under load,
# one probe per waiter was a new Postgres backend per 0.25 s per waiter, adding load to load.
PROBE_EVERY_SECONDS = 1.0

log = logging.getLogger("tidebase")


class _ConnectionLost(Exception):
    """The connection broke while a statement was in flight; whether it ran is unknown."""


class AsyncStore:
    """Owns the pool; hands out connections wrapped with the statements that use them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.q = Queries.for_schema(settings.schema)
        self.url: str | None = settings.database_url
        self._pool: AsyncConnectionPool[AsyncConnection[Row]] | None = None
        self._lock = Lock()
        self.outage = Outage(settings.safe_url, settings.reconnect_seconds, log)
        # When each pooled connection was last given back (see _check).
        self._returned: weakref.WeakKeyDictionary[AsyncConnection[Row], float] = (
            weakref.WeakKeyDictionary()
        )
        self._probed_at = -PROBE_EVERY_SECONDS  # when the last shared probe started
        self._probed: Probe | None = None  # its answer (None: the database answers)

    async def open(self) -> None:
        if self._pool is not None:
            return
        async with self._lock:
            if self._pool is not None:
                return
            url, _ = await run_blocking(
                connect_and_migrate, self.settings, apply=self.settings.auto_migrate
            )
            pool: AsyncConnectionPool[AsyncConnection[Row]] = AsyncConnectionPool(
                url,
                min_size=1,
                max_size=self.settings.max_connections,
                kwargs={
                    "autocommit": True,
                    "context": ADAPTERS,
                    "application_name": "tidebase",
                },
                open=False,
                name=self.outage.pool_name,
                # A connection that died while idle (a restart) is never handed out.
                check=self._check,
                timeout=self.settings.reconnect_seconds,
                # A connection that broke is replaced at once, and if that fails the pool does
                # not retry on its own schedule (1, 3, 7, 15 … s: the database back, runs
                # waited for it): it grows again as soon as a run asks for a connection,
                # which _getconn keeps doing while it waits for the database.
                reconnect_timeout=0.0,
            )
            await pool.open()
            self.url = url
            self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncStoreConnection]:
        """One pooled connection for a span of work (a whole run holds one)."""
        await self.open()
        db = AsyncStoreConnection(self, await self._getconn())
        try:
            yield db
        finally:
            await shielded(db.release)

    async def _check(self, conn: AsyncConnection[Row]) -> None:
        """The pool's check before handing a connection out; a dead one means the database
        went away (or restarted) since it was last used.

        A connection back in the pool for less than ``RECHECK_IDLE_SECONDS`` is handed out
        unchecked: the probe is a round trip (a third of an empty run's), and a connection that
        died in that moment fails its first statement, which every statement here survives.
        """
        returned = self._returned.get(conn)
        if returned is not None and time.monotonic() - returned < RECHECK_IDLE_SECONDS:
            return
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            self.outage.lost()
            raise

    async def _getconn(self) -> AsyncConnection[Row]:
        pool = self._pool
        if pool is None:
            raise DatabaseUnavailable("the Tidebase client is closed")
        deadline = time.monotonic() + self.settings.reconnect_seconds
        wait = 0.25
        probed: Probe | None = None
        while True:
            try:
                return await pool.getconn(timeout=max(0.01, min(wait, deadline - time.monotonic())))
            except PoolTimeout as exc:
                if time.monotonic() >= deadline:
                    raise DatabaseUnavailable(
                        f"no connection to Postgres ({self.settings.safe_url}) within "
                        f"{self.settings.reconnect_seconds:g}s (reconnect_seconds / "
                        f"TIDEBASE_RECONNECT_SECONDS): "
                        + no_connection(
                            probed,
                            pool.get_stats().get("pool_size", 0),
                            self.settings.max_connections,
                        )
                    ) from exc
            # Not handed one quickly: is the database away or full, or is every connection busy?
            probed = await self._shared_probe()
            wait = min(wait * 2, 2.0)

    async def _shared_probe(self) -> Probe | None:
        """``_probe``'s answer, probing at most once per ``PROBE_EVERY_SECONDS`` for all
        waiters (the start time is taken before the probe, so concurrent waiters share it)."""
        now = time.monotonic()
        if now - self._probed_at < PROBE_EVERY_SECONDS:
            return self._probed
        self._probed_at = now
        self._probed = await self._probe()
        return self._probed

    async def _probe(self) -> Probe | None:
        """Try to connect once: None if the database answers with room to spare, else why not
        (redacted)."""
        assert self.url is not None
        try:
            conn = await AsyncConnection.connect(
                self.url, autocommit=True, application_name="tidebase", connect_timeout=2
            )
        except psycopg.OperationalError as exc:
            why = redact_dsn(str(exc)).strip()
            if exc.sqlstate == "53300" or "too many clients" in why:  # it answers: it is full
                self.outage.end()
                self.outage.full(why)
                return Probe(why, full=True)
            self.outage.begin(exc)
            return Probe(why, full=False)
        await conn.close()
        self.outage.end()
        return None

    async def _connect(self) -> AsyncConnection[Row]:
        """A connection of its own (not pooled): a long LISTEN, the heartbeat, a reconnect.

        While the database is away, waits for it up to ``reconnect_seconds`` (saying so once)."""
        await self.open()
        assert self.url is not None
        deadline = time.monotonic() + self.settings.reconnect_seconds
        delay = 0.05
        while True:
            try:
                conn = await AsyncConnection.connect(
                    self.url,
                    autocommit=True,
                    context=ADAPTERS,
                    application_name="tidebase",
                    connect_timeout=max(2, min(10, int(self.settings.reconnect_seconds))),
                )
                self.outage.end()
                return conn
            except psycopg.OperationalError as exc:
                self.outage.begin(exc)  # not a blip: the database is away
                if time.monotonic() > deadline:
                    raise DatabaseUnavailable(
                        f"lost the connection to Postgres ({self.settings.safe_url}) and it "
                        f"did not come back within {self.settings.reconnect_seconds:g}s "
                        f"(reconnect_seconds / TIDEBASE_RECONNECT_SECONDS): "
                        f"{redact_dsn(str(exc))}"
                    ) from None
            await sleep(delay)
            delay = min(delay * 2, 1.0)

    async def dedicated(self) -> AsyncStoreConnection:
        """A connection of its own for a long-lived user (the heartbeat): no workload holding
        pooled connections can starve it. The caller closes it (``release``)."""
        return AsyncStoreConnection(self, await self._connect(), pooled=False)

    @asynccontextmanager
    async def listener(self, run_id: str) -> AsyncIterator[AsyncRunListener]:
        """A dedicated connection LISTENing to ``run_id``'s channel, registered as a watcher."""
        db = AsyncStoreConnection(self, await self._connect(), pooled=False)
        try:
            listener = AsyncRunListener(db, run_id, channel(self.settings.schema, run_id))
            await listener.start()
            yield listener
        finally:
            await shielded(db.release)

    async def _putconn(self, conn: AsyncConnection[Row]) -> None:
        pool = self._pool
        if pool is None:
            await conn.close()
        else:
            if not conn.broken:
                self._returned[conn] = time.monotonic()
            await pool.putconn(conn)


class AsyncStoreConnection:
    """A pooled connection plus the statements; reconnects when the database comes back."""

    def __init__(
        self, store: AsyncStore, conn: AsyncConnection[Row], *, pooled: bool = True
    ) -> None:
        self._store = store
        self._conn = conn
        self._pooled = pooled
        self._released = False
        # One cursor for the connection's statements: a cursor of its own per statement cost
        # ~20 µs of client CPU (the cursor, and each parameter type's dumper looked up again).
        # The lock keeps a statement and the reading of its rows together: the run's branches
        # (tasks, threads) share the connection.
        self._cursor: AsyncCursor[Row] | None = None
        self._statement = Lock()
        self._channels: set[str] = set()
        self.q = store.q
        # A new run's claim held back until the connection's first statement about the run,
        # which it then precedes (``defer_claim``); the lock makes concurrent branches wait
        # for the one that sends it.
        self._deferred: tuple[ClaimRequest, Callable[[], None]] | None = None
        self._deferring = Lock()

    # -- plumbing ---------------------------------------------------------------------------

    async def release(self) -> None:
        """Give the connection back: to the pool, or closed if it is one of our own.

        A task or thread the run started may outlive it (a branch of a gather that failed
        first): it waits for that one's statement in flight, and is refused any later one,
        so a connection is never used by two owners at once.
        """
        async with self._conn.lock:
            self._released = True
        if self._pooled:
            await self._store._putconn(self._conn)
        else:
            await self._conn.close()

    async def _execute(self, query: str, params: dict[str, Any] | Sequence[Any]) -> list[Row]:
        """Run one statement (after a deferred claim, if one is held); a lost connection raises
        ``_ConnectionLost`` after reconnecting."""
        if self._deferred is not None:
            await self.flush_claim()
        return await self._send(query, params)

    async def _send(self, query: str, params: dict[str, Any] | Sequence[Any]) -> list[Row]:
        """``_execute`` without looking for a deferred claim (the claim itself): every
        statement goes out through here."""
        if self._released:
            raise ConnectionReleased(
                "this run has ended and its connection was given back, but code it started (a "
                "task or thread) is still writing to it; await or cancel the tasks a workflow "
                "starts before it returns or raises"
            )
        try:
            async with self._statement:
                cur = self._cursor
                if cur is None or cur.connection is not self._conn:  # first, or reconnected
                    cur = self._cursor = self._conn.cursor()
                await cur.execute(query, params)
                # Checking the result status is cheaper than cur.description (builds columns).
                result = cur.pgresult
                if result is None or result.status != TUPLES_OK:
                    return []
                return await cur.fetchall()
        except psycopg.OperationalError as exc:
            if not (self._conn.broken or self._conn.closed):
                raise
            await self._reconnect(exc)
            raise _ConnectionLost from exc

    async def _read(
        self, query: str, params: dict[str, Any] | Sequence[Any], *, raw: bool = False
    ) -> list[Row]:
        """An idempotent statement: retried until the database answers again. ``raw``: sent
        as is, not after a deferred claim (the claim's own reads)."""
        while True:
            try:
                if raw:
                    return await self._send(query, params)
                return await self._execute(query, params)
            except _ConnectionLost:
                continue

    async def _write(
        self,
        query: str,
        params: dict[str, Any],
        recover: Callable[[Row], list[Row]] = lambda found: [found],
    ) -> list[Row]:
        """A write that appends to a run's log, applied exactly once across lost connections.

        ``params["write_id"]`` (set here) travels in the statement onto its event row: one round
        trip as usual. Only after the connection dropped mid-flight does a lookup ask whether
        the write committed; if it did, ``recover`` turns the found ``(seq, version)`` into what
        the statement would have returned, else the statement runs again.
        """
        params["write_id"] = uuid.uuid4()
        try:
            return await self._execute(query, params)
        except _ConnectionLost:
            pass
        while True:
            found = await self._read(self.q.find_write, params)
            if found:
                return recover(found[0])
            try:
                return await self._execute(query, params)
            except _ConnectionLost:
                continue
            except psycopg.errors.UniqueViolation:
                continue  # the first try committed after all (its backend outlived our link)

    async def _reconnect(self, cause: BaseException) -> None:
        """A fresh connection of our own (kept until ``release``), waiting for the database for
        up to ``reconnect_seconds``; the pool's own reconnection backs off for far longer."""
        self._store.outage.lost()
        old, self._pooled = self._pooled, False
        with contextlib.suppress(Exception):  # a dead connection may fail to close: it's gone
            if old:
                await self._store._putconn(self._conn)  # the pool discards a broken connection
            else:
                await self._conn.close()
        while True:
            self._conn = await self._store._connect()
            try:
                for channel in self._channels:
                    await self._conn.execute(listen_statement(channel))
                return
            except psycopg.OperationalError:
                with contextlib.suppress(Exception):
                    await self._conn.close()  # lost again already: once more

    # -- runs: claim, finish ------------------------------------------------------------------

    async def claim_run(
        self, request: ClaimRequest, *, void_token: uuid.UUID | None = None
    ) -> Claim | None:
        """Take the run's lease (creating the run if needed), one round trip. ``void_token``: a
        dead owner's lease, taken over as if it had expired."""
        query = self.q.claim_run if request.parent is None else self.q.claim_child_run
        return await self._claim(query, request.params(void_token))

    def defer_claim(self, request: ClaimRequest, *, then: Callable[[], None]) -> None:
        """Hold a new run's claim until this connection's first statement, which it then
        precedes; ``then()`` once it committed. If the run completes before any,
        ``complete_run`` writes it created and completed in one statement."""
        self._deferred = (request, then)

    @property
    def claim_deferred(self) -> bool:
        return self._deferred is not None

    async def flush_claim(self) -> None:
        """Send the deferred claim now, if one is held: before a step body, whose effects must
        never precede the run's record."""
        if self._deferred is None:
            return
        async with self._deferring:
            deferred = self._deferred
            if deferred is None:
                return  # a concurrent branch sent it while this one waited
            request, then = deferred
            claim = await self._claim(self.q.claim_run, request.params())
            if claim is None or not claim.created:
                raise request.taken()
            self._deferred = None
            then()

    async def _claim(self, query: str, params: dict[str, Any]) -> Claim | None:
        # Sent with _send, never _execute: a deferred claim is flushed through here.
        while True:
            try:
                rows = await self._send(query, params)
            except _ConnectionLost:
                # Did the claim commit? Its run.started event carries our write id.
                rows = await self._read(self.q.find_claim, params, raw=True)
                if not rows:
                    continue
            except psycopg.errors.UniqueViolation:
                continue  # a retry racing the first try, which committed: find it
            if rows:
                return Claim.won(rows[0])
            found = await self._read(self.q.claim_refused, {"run_id": params["run_id"]}, raw=True)
            return Claim.refused(found[0]) if found else None

    async def _complete_new_run(self, finish: dict[str, Any]) -> bool:
        """The run whose claim is deferred, written created and completed in one statement."""
        async with self._deferring:
            if self._deferred is None:  # a concurrent branch sent the claim meanwhile
                return bool(await self._write(self.q.complete_run, finish))
            request = self._deferred[0]
            params = {**request.values(), **finish}
            while True:
                lost = False
                try:
                    rows = await self._send(self.q.complete_new_run, params)
                except _ConnectionLost:
                    rows, lost = [], True
                # Nothing written: ours committed before the link dropped (or is committing on
                # a backend that outlived it: the insert waited for it), or the id is taken.
                if rows or await self._read(self.q.find_new_run, params, raw=True):
                    break
                if not lost:
                    raise request.taken()
            self._deferred = None
            return True

    async def load_checkpoints(self, run_id: str) -> tuple[dict[str, Checkpoint], dict[str, int]]:
        """What earlier attempts left: step checkpoints by key, and workflow-body operations
        (op key → log seq)."""
        rows = await self._read(self.q.load_checkpoints, {"run_id": run_id})
        checkpoints: dict[str, Checkpoint] = {}
        ops: dict[str, int] = {}
        for r in rows:
            if r[1] == "op":
                ops[r[0]] = r[7]
                continue
            checkpoints[r[0]] = Checkpoint(
                key=r[0],
                status=r[1],
                input_hash=r[2],
                output=None if r[3] is None else r[3].decode(),
                error=None if r[4] is None else r[4].decode(),
                decision=None if r[5] is None else ResumeDecision(r[5]),
                attempt=r[6],
                seq=r[7],
                output_type=r[8],
            )
        return checkpoints, ops

    async def write_checkpoint(
        self,
        *,
        run_id: str,
        token: uuid.UUID,
        key: str,
        input_hash: str,
        output: str,
        output_type: str | None,
        attempt: int,
        decision: ResumeDecision,
        idempotency_key: str | None,
        replaces: bool = False,
        usage: Sequence[UsageInput] = (),
        entries: Sequence[tuple[str, str]] = (),
    ) -> bool:
        """The step's one round trip. False when the fence refused it (lease lost, cancelled).

        ``replaces``: the key already has a row (an earlier failed try or an intent record).
        ``usage``: ledger rows of the model calls the step made, and ``entries`` (event type,
        payload JSON text) log entries of its own, written in the same statement, each at a
        seq just before the checkpoint's: the usage rows' ``usage.recorded`` entries first.
        """
        params: dict[str, Any] = {
            "run_id": run_id,
            "token": token,
            "key": key,
            "input_hash": input_hash,
            "output": ExactJson(output),
            "output_type": output_type,
            "attempt": attempt,
            "decision": decision.value,
            "idempotency_key": idempotency_key,
        }
        if usage or entries:
            logged = [("usage.recorded", u.payload) for u in usage]
            logged += entries
            params["usage"] = JsonText(
                encode([_usage_record(i, u) for i, u in enumerate(usage)], what="usage rows")
            )
            params["n_entries"] = len(logged)
            params["entries"] = JsonText(
                "["
                + ",".join(
                    f'{{"ord":{i},"type":{encode(type)},"payload":{payload}}}'
                    for i, (type, payload) in enumerate(logged)
                )
                + "]"
            )
            query = (
                self.q.rewrite_checkpoint_with_entries
                if replaces
                else self.q.write_checkpoint_with_entries
            )
        else:
            query = self.q.rewrite_checkpoint if replaces else self.q.write_checkpoint
        while True:
            try:
                return bool(await self._execute(query, params))
            except (_ConnectionLost, psycopg.errors.UniqueViolation):
                # Did the write commit before the connection dropped? (A unique violation: a
                # retry raced the first try's backend, which outlived the connection.)
                found = await self._read(self.q.get_step, {"run_id": run_id, "key": key})
                if found and found[0][0] == "completed" and found[0][1] == input_hash:
                    return True

    async def write_step_state(
        self,
        *,
        run_id: str,
        token: uuid.UUID,
        key: str,
        status: str,
        input_hash: str,
        error: str | None,
        attempt: int,
        decision: ResumeDecision,
        idempotency_key: str | None,
        event: str,
        payload: str,
    ) -> bool:
        """Record a step's intent ('running') or failure ('failed') with its log event."""
        rows = await self._write(
            self.q.write_step_state,
            {
                "run_id": run_id,
                "token": token,
                "key": key,
                "status": status,
                "input_hash": input_hash,
                "error": None if error is None else JsonText(error),
                "attempt": attempt,
                "decision": decision.value,
                "idempotency_key": idempotency_key,
                "event": event,
                "payload": JsonText(payload),
            },
        )
        return bool(rows)

    async def complete_run(
        self,
        *,
        run_id: str,
        token: uuid.UUID,
        attempt: int,
        result: str,
        result_type: str | None,
        payload: str,
    ) -> bool:
        params = {
            "run_id": run_id,
            "token": token,
            "result": ExactJson(result),
            "result_type": result_type,
            "payload": JsonText(payload),
        }
        if self._deferred is not None:  # the run made no durable operation: one statement
            return await self._complete_new_run(params)
        return bool(await self._write(self.q.complete_run, params))

    async def fail_run(
        self,
        *,
        run_id: str,
        token: uuid.UUID,
        error: str,
        failure_class: ResumeDecision | str | None,
        payload: str,
    ) -> bool:
        rows = await self._write(
            self.q.fail_run,
            {
                "run_id": run_id,
                "token": token,
                "error": JsonText(error),
                "failure_class": None if failure_class is None else str(failure_class),
                "payload": JsonText(payload),
            },
        )
        return bool(rows)

    async def park_run(self, *, run_id: str, token: uuid.UUID, payload: str) -> bool:
        """Leave the run 'waiting' with no worker (a gate with ``wait=False``)."""
        rows = await self._write(
            self.q.park_run, {"run_id": run_id, "token": token, "payload": JsonText(payload)}
        )
        return bool(rows)

    async def release_run(self, *, run_id: str, token: uuid.UUID) -> None:
        await self._read(self.q.release_run, {"run_id": run_id, "token": token})

    async def fence_state(self, run_id: str) -> FenceState | None:
        rows = await self._read(self.q.fence_state, {"run_id": run_id})
        return FenceState(*rows[0]) if rows else None

    # -- leases -------------------------------------------------------------------------------

    async def renew_leases(
        self, *, lease: float, held: Sequence[tuple[str, uuid.UUID]]
    ) -> set[str]:
        """Extend every lease in ``held``; returns the run ids still ours."""
        rows = await self._read(
            self.q.renew_leases,
            {
                "lease": lease,
                "run_ids": [run_id for run_id, _ in held],
                "tokens": [token for _, token in held],
            },
        )
        return {r[0] for r in rows}

    async def lease_states(self, run_ids: Sequence[str]) -> dict[str, FenceState]:
        rows = await self._read(self.q.lease_states, {"run_ids": list(run_ids)})
        return {r[0]: FenceState(r[1], r[2], r[3]) for r in rows}

    # -- events -------------------------------------------------------------------------------

    async def append_event(
        self,
        *,
        run_id: str,
        type: str,
        payload: str,
        token: uuid.UUID | None = None,
        op_key: str | None = None,
    ) -> int | None:
        """Append to the run's log; returns the seq (None: no such run, or fenced).

        With ``token`` the write is the worker's own and is fenced by its lease; ``op_key``
        marks a workflow-body operation (skipped when a resumed run replays past it).
        """
        params = {
            "run_id": run_id,
            "type": type,
            "payload": JsonText(payload),
            "token": token,
            "op_key": op_key,
        }
        query = self.q.append_event if token is None else self.q.emit_event
        rows = await self._write(query, params)
        return int(rows[0][0]) if rows else None

    # -- live state ---------------------------------------------------------------------------

    async def update_state(
        self,
        *,
        run_id: str,
        token: uuid.UUID,
        value: str,
        patch: bool,
        op_key: str | None,
        note: StateNote = NO_NOTE,
    ) -> int | None:
        """Set (or merge-patch) the state: the new version, or None when fenced."""
        rows = await self._write(
            self.q.patch_state if patch else self.q.set_state,
            {
                "run_id": run_id,
                "token": token,
                "value": JsonText(value),
                "op_key": op_key,
                **note.params(),
            },
            _version,
        )
        return int(rows[0][0]) if rows else None

    async def save_state(
        self, *, run_id: str, token: uuid.UUID, label: str, op_key: str | None
    ) -> int | None:
        """Label the current version: that version, or None (fenced, or no state yet)."""
        rows = await self._write(
            self.q.save_state,
            {"run_id": run_id, "token": token, "label": label, "op_key": op_key},
            _version,
        )
        return int(rows[0][0]) if rows else None

    async def get_state(self, run_id: str) -> tuple[int, Any] | None:
        rows = await self._read(self.q.get_state, {"run_id": run_id})
        return (int(rows[0][0]), decode_json(rows[0][1])) if rows else None

    async def get_state_at(self, run_id: str, seq: int) -> tuple[int, Any] | None:
        """The state as it was at log position ``seq``."""
        rows = await self._read(self.q.get_state_at, {"run_id": run_id, "seq": seq})
        return (int(rows[0][0]), decode_json(rows[0][1])) if rows else None

    async def state_versions(self, run_id: str, *, labeled: bool) -> list[StateVersion]:
        rows = await self._read(self.q.list_state_versions, {"run_id": run_id, "labeled": labeled})
        return [state_version(r) for r in rows]

    # -- gates --------------------------------------------------------------------------------

    async def get_gate(self, run_id: str, name: str) -> GateRow | None:
        """The gate and its run's status; None when the run does not exist."""
        rows = await self._read(self.q.get_gate, {"run_id": run_id, "name": name})
        if not rows:
            return None
        r = rows[0]
        return GateRow(
            r[0],
            r[1],
            decode_json(r[2]),
            r[3],
            r[4],
            decode_json(r[5]),
            r[6],
            r[7],
            r[8],
            r[9],
            r[10],
            r[11],
            r[12],
        )

    async def list_gates(
        self, *, status: str | None, run_id: str | None, limit: int
    ) -> list[GateInfo]:
        rows = await self._read(
            self.q.list_gates, {"status": status, "run_id": run_id, "limit": limit}
        )
        return [
            GateInfo(
                name=r[0],
                prompt=r[1],
                data=decode_json(r[2]),
                status=r[3],
                actor=r[4],
                payload=decode_json(r[5]),
                token=r[6],
                created_at=r[7],
                resolved_at=r[8],
                run_id=r[9],
            )
            for r in rows
        ]

    async def open_gate(
        self,
        *,
        run_id: str,
        token: uuid.UUID,
        name: str,
        prompt: str,
        data: str | None,
        gate_token: str,
        payload: str,
    ) -> bool:
        rows = await self._write(
            self.q.open_gate,
            {
                "run_id": run_id,
                "token": token,
                "name": name,
                "prompt": prompt,
                "data": None if data is None else JsonText(data),
                "gate_token": gate_token,
                "payload": JsonText(payload),
            },
        )
        return bool(rows)

    async def reopen_gate(self, *, run_id: str, token: uuid.UUID) -> bool:
        return bool(await self._read(self.q.reopen_gate, {"run_id": run_id, "token": token}))

    async def resolve_gate(
        self,
        *,
        run_id: str,
        name: str,
        decision: str,
        actor: str | None,
        gate_token: str | None,
        payload: str | None,
        event: str,
    ) -> bool:
        rows = await self._write(
            self.q.resolve_gate,
            {
                "run_id": run_id,
                "name": name,
                "decision": decision,
                "actor": actor,
                "gate_token": gate_token,
                "payload": None if payload is None else JsonText(payload),
                "event": JsonText(event),
            },
        )
        return bool(rows)

    # -- child runs ---------------------------------------------------------------------------

    async def create_edge(
        self, *, run_id: str, token: uuid.UUID, edge: str, child_run_id: str
    ) -> bool:
        """Link a child; False when the parent's lease no longer holds (or the edge existed)."""
        params = {"run_id": run_id, "token": token, "edge": edge, "child_run_id": child_run_id}
        return bool(await self._read(self.q.create_edge, params))

    async def edge_child(self, run_id: str, edge: str) -> str | None:
        rows = await self._read(self.q.edge_exists, {"run_id": run_id, "edge": edge})
        return str(rows[0][0]) if rows else None

    async def children(self, run_id: str) -> list[tuple[str, str]]:
        rows = await self._read(self.q.list_children, {"run_id": run_id})
        return [(r[0], r[1]) for r in rows]

    # -- usage --------------------------------------------------------------------------------

    async def record_usage(self, usage: UsageInput, *, op_key: str | None = None) -> bool:
        """One ledger row and its ``usage.recorded`` event; False when the run is unknown."""
        params = {
            "op_key": op_key,
            "run_id": usage.run_id,
            "step_name": usage.step_name,
            "attempt": usage.attempt,
            "kind": usage.kind,
            "provider": usage.provider,
            "model": usage.model,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "total_tokens": usage.total_tokens,
            "cost_usd": usage.cost_usd,
            "cost_source": usage.cost_source,
            "label": usage.label,
            "metadata": None if usage.metadata is None else JsonText(usage.metadata),
            "payload": JsonText(usage.payload),
            "agent": usage.agent,
            "quantity": usage.quantity,
            "unit": usage.unit,
        }
        return bool(await self._write(self.q.record_usage, params))

    async def usage_records(self, run_id: str) -> list[UsageRecord]:
        rows = await self._read(self.q.list_usage, {"run_id": run_id})
        return [
            UsageRecord(
                kind=r[0],
                provider=r[1],
                model=r[2],
                input_tokens=r[3],
                output_tokens=r[4],
                total_tokens=r[5],
                cost_usd=r[6],
                cost_source=r[7],
                step_name=r[8],
                attempt=r[9],
                created_at=r[10],
                run_id=r[11],
                label=r[12],
                metadata=decode_json(r[13]),
                agent=r[14],
                quantity=r[15],
                unit=r[16],
            )
            for r in rows
        ]

    async def summarize_usage(
        self,
        *,
        run_id: str | None,
        workflow: str | None,
        since: datetime | None,
        include_children: bool = False,
    ) -> list[Row]:
        """Ledger totals grouped by model, agent, attempt and step (see SUMMARIZE_USAGE)."""
        return await self._read(
            self.q.summarize_usage,
            {
                "run_id": run_id,
                "workflow": workflow,
                "since": since,
                "include_children": include_children,
            },
        )

    async def attempt_outcomes(
        self, run_id: str, *, include_children: bool
    ) -> dict[tuple[str, int], AttemptOutcome]:
        """How each attempt of the run (tree) ended: completed, failed, parked, cancelled,
        running, or crashed (ended without recording an end: killed, or its lease lapsed)."""
        rows = await self._read(
            self.q.attempt_outcomes, {"run_id": run_id, "include_children": include_children}
        )
        outcomes: dict[tuple[str, int], AttemptOutcome] = {}
        for run, attempt, ended_by, superseded, live in rows:
            outcome: AttemptOutcome
            if ended_by is not None:
                outcome = _ATTEMPT_ENDS[ended_by]
            elif live and not superseded:
                outcome = "running"
            else:
                outcome = "crashed"
            outcomes[(run, attempt)] = outcome
        return outcomes

    # -- budgets ------------------------------------------------------------------------------

    async def budget_statuses(
        self, holders: Sequence[str], *, run_id: str, check: bool
    ) -> list[BudgetStatus]:
        """Each governing budget and its run tree's spend, in one round trip. With ``check``
        (a run about to spend), a budget past 80 % of a cap gets its ``budget.warning`` event,
        once."""
        rows = await self._read(
            self.q.check_budget if check else self.q.budget_spend,
            {"holders": list(holders), "run_id": run_id},
        )
        return [
            BudgetStatus(
                run_id=r[0],
                budget=_stored_budget(r[1]),
                spend=BudgetSpend(
                    calls=r[2], usd=r[3], tokens=r[4], input_tokens=r[5], output_tokens=r[6]
                ),
                warned=r[7],
            )
            for r in rows
        ]

    async def set_budget(self, *, run_id: str, budget: str | None, payload: str) -> bool:
        """Set (or with None remove) the run's budget; False when there is no such run."""
        rows = await self._write(
            self.q.set_budget,
            {
                "run_id": run_id,
                "budget": None if budget is None else JsonText(budget),
                "payload": JsonText(payload),
            },
        )
        return bool(rows)

    # -- listening ----------------------------------------------------------------------------

    async def watch(self, run_id: str, seconds: float) -> str | None:
        """Ask writers to NOTIFY this run's channel for ``seconds``; returns the run's status."""
        rows = await self._read(self.q.watch_run, {"run_id": run_id, "for": seconds})
        return str(rows[0][0]) if rows else None

    async def listen(self, channel: str) -> None:
        await self._read(listen_statement(channel), ())  # LISTEN again: harmless
        self._channels.add(channel)

    async def wait_notify(self, timeout: float) -> bool:
        """Block until a notification arrives on a LISTENed channel, or ``timeout``."""
        try:
            async for _ in self._conn.notifies(timeout=timeout, stop_after=1):
                return True
        except psycopg.OperationalError as exc:
            await self._reconnect(exc)
            raise _ConnectionLost from exc
        return False

    # -- introspection and control ------------------------------------------------------------

    async def get_run(self, run_id: str) -> RunInfo | None:
        rows = await self._read(self.q.get_run, {"run_id": run_id})
        return _run_info(rows[0]) if rows else None

    async def list_runs(
        self, *, status: str | None, workflow: str | None, limit: int
    ) -> list[RunInfo]:
        rows = await self._read(
            self.q.list_runs, {"status": status, "workflow": workflow, "limit": limit}
        )
        return [_run_info(r) for r in rows]

    async def list_steps(self, run_id: str) -> list[StepInfo]:
        rows = await self._read(self.q.list_steps, {"run_id": run_id})
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

    async def list_events(self, run_id: str, *, after_seq: int, limit: int | None) -> list[Event]:
        rows = await self._read(
            self.q.list_events, {"run_id": run_id, "after_seq": after_seq, "limit": limit}
        )
        return [
            Event(seq=r[0], type=r[1], payload=decode_json(r[2]), created_at=r[3]) for r in rows
        ]

    async def cancel_run(self, *, run_id: str, reason: str | None, payload: str) -> list[str]:
        """Cancel the run and its unfinished descendants; the ids cancelled."""
        # Idempotent as it stands: a retry finds the runs cancelled and changes nothing.
        rows = await self._read(
            self.q.cancel_run,
            {"run_id": run_id, "reason": reason, "payload": JsonText(payload)},
        )
        return [str(r[0]) for r in rows]

    async def resolve_parked_step(
        self, *, run_id: str, key: str, output: str | None, event_type: str, payload: str
    ) -> tuple[str, Row | None, Row | None]:
        """Operator action on a parked step, all or nothing in one transaction.

        With ``output`` None the step is released to run again; otherwise it is completed with
        that output. Returns ``("ok" | "no_run" | "locked" | "no_step" | "not_parked", run
        row, step row)`` so the caller can word the error.
        """
        write_id = uuid.uuid4()  # on its event: a retry after a lost connection finds it
        while True:
            try:
                return await self._settle_parked_step(
                    run_id, key, output, event_type, payload, write_id
                )
            except (_ConnectionLost, psycopg.OperationalError) as exc:
                if self._conn.broken or self._conn.closed:
                    await self._reconnect(exc)  # it broke at COMMIT: did that commit land?
                elif not isinstance(exc, _ConnectionLost) and not isinstance(
                    exc.__context__, _ConnectionLost
                ):
                    raise  # not a lost connection (leaving a broken one's transaction is)
            found = await self._read(self.q.find_write, {"run_id": run_id, "write_id": write_id})
            if found:
                return "ok", None, None

    async def _settle_parked_step(
        self,
        run_id: str,
        key: str,
        output: str | None,
        event_type: str,
        payload: str,
        write_id: uuid.UUID,
    ) -> tuple[str, Row | None, Row | None]:
        async with self._conn.transaction():
            run = await self._execute(self.q.lock_run, {"run_id": run_id})
            if not run:
                return "no_run", None, None
            status, token, expired = run[0][0], run[0][1], run[0][2]
            if status == "running" and token is not None and not expired:
                return "locked", run[0], None
            step = await self._execute(self.q.get_step, {"run_id": run_id, "key": key})
            if not step:
                return "no_step", run[0], None
            if step[0][0] == "completed":
                return "not_parked", run[0], step[0]
            if output is None:
                await self._execute(self.q.approve_step_retry, {"run_id": run_id, "key": key})
            else:
                await self._execute(
                    self.q.resolve_step,
                    {"run_id": run_id, "key": key, "output": ExactJson(output)},
                )
            await self._execute(
                self.q.append_event,
                {
                    "run_id": run_id,
                    "type": event_type,
                    "payload": JsonText(payload),
                    "op_key": None,
                    "write_id": write_id,
                },
            )
            return "ok", run[0], step[0]


class AsyncRunListener:
    """Wakes up when the run's log grows (or a gate is decided), without polling.

    Writers NOTIFY only while someone watches the run, so the watch (``runs.watched_until``)
    is renewed while the listener lives. LISTEN comes before the watch and before any read,
    so nothing written after the listener starts can be missed.
    """

    WATCH_SECONDS = 60.0

    def __init__(self, db: AsyncStoreConnection, run_id: str, channel: str) -> None:
        self.db = db
        self.run_id = run_id
        self._channel = channel
        self._renew_at = 0.0
        self.run_status: str | None = None

    async def start(self) -> None:
        await self.db.listen(self._channel)
        await self._watch()

    async def _watch(self) -> None:
        self.run_status = await self.db.watch(self.run_id, self.WATCH_SECONDS)
        self._renew_at = time.monotonic() + self.WATCH_SECONDS / 3

    async def wait(self, timeout: float) -> bool:
        """Block until a notification arrives or ``timeout`` passes; True if one arrived."""
        if time.monotonic() >= self._renew_at:
            await self._watch()
        limit = max(0.0, min(timeout, self._renew_at - time.monotonic()))
        while True:
            try:
                return await self.db.wait_notify(limit)
            except _ConnectionLost:
                # Reconnected (and LISTENing again): anything missed meanwhile is in the log,
                # which the caller reads next; report a wake-up so it does.
                await self._watch()
                return True


def _version(found: Row) -> list[Row]:
    """What a state write returns (its version), from its event found after a lost connection."""
    return [(found[1],)]


def _usage_record(ord: int, u: UsageInput) -> dict[str, Any]:
    """A usage row as one element of the JSON array ``jsonb_to_recordset`` reads."""
    return {
        "ord": ord,
        "kind": u.kind,
        "provider": u.provider,
        "model": u.model,
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "cost_usd": None if u.cost_usd is None else str(u.cost_usd),
        "cost_source": u.cost_source,
        "label": u.label,
        "metadata": None if u.metadata is None else decode_json(u.metadata),
        "agent": u.agent,
        "quantity": None if u.quantity is None else str(u.quantity),
        "unit": u.unit,
    }


@functools.lru_cache(maxsize=1024)
def _stored_budget(text: bytes | str) -> Budget:
    """A stored budget (JSON text); a run checks the same one again and again."""
    return Budget.stored(decode_json(text))


_ATTEMPT_ENDS: dict[str, AttemptOutcome] = {
    "run.completed": "completed",
    "run.failed": "failed",
    # A failed attempt put back on its queue: a run.requeued with an error, which
    # ATTEMPT_OUTCOMES reports under the name earlier releases logged it with.
    "run.retrying": "failed",
    "run.parked": "parked",
    "run.cancelled": "cancelled",
    # Put back by the reconciler or an operator without an end of its own: the worker died.
    "run.requeued": "crashed",
    "run.recovering": "crashed",
}


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
        budget_holders=list(r[13] or ()),
    )
