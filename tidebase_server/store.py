"""The protocol's own reads and writes, on the client's store (SQL lives in
``tidebase_core.store.protocol_queries``)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidebase_core._async.client import AsyncTidebase
from tidebase_core._async.queue_store import advisory_key
from tidebase_core._async.store import AsyncStoreConnection, _ConnectionLost
from tidebase_core._run_base import UsageInput
from tidebase_core.errors import DatabaseUnavailable
from tidebase_core.models import StateVersion
from tidebase_core.serialization import decode_json
from tidebase_core.store.adapters import ExactJson, JsonText
from tidebase_core.store.protocol_queries import ProtocolQueries
from tidebase_core.store.queue_queries import QueueQueries
from tidebase_core.store.records import StateNote, state_version

__all__ = [
    "ChannelRow",
    "DeliveryRow",
    "EdgeRow",
    "LockedRun",
    "ProtocolStore",
    "ProtocolTx",
    "QueueRow",
    "RunRow",
    "StepRow",
]


@dataclass(frozen=True)
class RunRow:
    run_id: str
    workflow_name: str
    status: str
    input: Any
    result: Any
    error: Any
    attempt: int
    failure_class: str | None
    metadata: Any
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    lease_expires_at: datetime | None
    owner_token: str | None
    """Who holds the lease: a protocol worker's name, else an in-process owner's token."""
    cancel_reason: str | None
    cancel_actor: str | None
    queue: str | None = None
    dedupe_key: str | None = None
    priority: int = 0
    run_at: datetime | None = None
    max_attempts: int | None = None
    deadline_at: datetime | None = None
    recovery_webhook: str | None = None


def _row(r: tuple[Any, ...]) -> RunRow:
    return RunRow(
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
        owner_token=lease_holder(r[13], r[14]),
        cancel_reason=r[15],
        cancel_actor=r[16],
        queue=r[17],
        dedupe_key=r[18],
        priority=r[19],
        run_at=r[20],
        max_attempts=r[21],
        deadline_at=r[22],
        recovery_webhook=r[23],
    )


@dataclass(frozen=True)
class LockedRun:
    status: str
    owner: str | None
    """Who holds the lease: a protocol worker's name, else an in-process owner's token."""
    leased: bool
    """Someone holds a live lease."""
    token: uuid.UUID | None = None
    """The lease holder's owner token (the fence of in-process writes)."""
    queue: str | None = None
    attempt: int = 0


@dataclass(frozen=True)
class StepRow:
    key: str
    status: str
    input_hash: str | None
    input: Any
    options: Any
    output: Any
    error: Any
    attempt: int
    resume_decision: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    started_at: datetime | None
    created_at: datetime
    updated_at: datetime
    leased: bool = False


def _step(r: tuple[Any, ...]) -> StepRow:
    return StepRow(
        key=r[0],
        status=r[1],
        input_hash=r[2],
        input=decode_json(r[3]),
        options=decode_json(r[4]),
        output=decode_json(r[5]),
        error=decode_json(r[6]),
        attempt=r[7],
        resume_decision=r[8],
        lease_owner=r[9],
        lease_expires_at=r[10],
        started_at=r[11],
        created_at=r[12],
        updated_at=r[13],
        leased=bool(r[14]) if len(r) > 14 and isinstance(r[14], bool) else False,
    )


# Protocol workers are named by strings; in-process fencing is by uuid: one from the other.
_OWNER_NAMESPACE = uuid.UUID("5d7c0a52-6f0e-4e52-9a39-1f3f1b1c7e11")


def owner_token(name: str) -> uuid.UUID:
    return uuid.uuid5(_OWNER_NAMESPACE, name)


def lease_holder(token: uuid.UUID | None, name: str | None) -> str | None:
    """The protocol worker's name while its token holds the lease, else the token itself (an
    in-process owner, or one that took the run over since)."""
    if token is None:
        return None
    if name is not None and owner_token(name) == token:
        return name
    return str(token)


@dataclass(frozen=True)
class QueueRow:
    name: str
    configured: bool
    concurrency: int | None
    rate_per_minute: int | None
    invoke_url: str | None
    queued: int = 0
    running: int = 0
    failed: int = 0
    completed: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class ChannelRow:
    id: int
    run_id: str
    gate_name: str | None
    url: str
    secret: str | None
    events: list[str]
    delivered_seq: int
    created_at: datetime


def _channel(r: tuple[Any, ...]) -> ChannelRow:
    events = decode_json(r[5]) if isinstance(r[5], str | bytes) else r[5]
    return ChannelRow(r[0], r[1], r[2], r[3], r[4], list(events or []), int(r[6]), r[7])


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    channel_id: int
    run_id: str
    gate_name: str | None
    event_type: str
    payload: Any
    status: str
    http_status: int | None
    error_text: str | None
    created_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True)
class EdgeRow:
    parent_run_id: str
    name: str
    child_run_id: str
    edge_type: str
    metadata: Any
    created_at: datetime


def _edge(r: tuple[Any, ...]) -> EdgeRow:
    return EdgeRow(r[0], r[1], r[2], r[3], decode_json(r[4]), r[5])


@dataclass(frozen=True)
class SnapshotRow:
    """A snapshot: a labeled value in a stream of its own (not the run's state)."""

    stream: str
    version: int
    label: str
    value: Any
    reason: str | None
    metadata: Any
    created_by: str | None
    created_at: datetime


def _snapshot(r: tuple[Any, ...]) -> SnapshotRow:
    return SnapshotRow(
        r[0], int(r[1]), r[2], decode_json(r[3]), r[4], decode_json(r[5]), r[6], r[7]
    )


class ProtocolTx:
    """The protocol's writes inside one transaction (``ProtocolStore.transaction``). Start with
    ``lock_run``: the run row's lock orders everything else."""

    def __init__(self, db: AsyncStoreConnection, store: ProtocolStore) -> None:
        self._db = db
        self.q = store.q
        self.qq = store.qq
        self.schema = store.schema
        self.lease = store.lease_seconds

    async def _run(self, query: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        try:
            return await self._db._execute(query, params)
        except _ConnectionLost as exc:  # the transaction is gone with it: nothing was applied
            raise DatabaseUnavailable(
                "the connection to Postgres dropped during the request; nothing was applied, "
                "retry it"
            ) from exc.__cause__

    async def lock_run(self, run_id: str) -> LockedRun | None:
        rows = await self._run(self.q.lock_run, {"run_id": run_id})
        if not rows:
            return None
        status, name, token, leased, queue, attempt = rows[0]
        return LockedRun(
            status, lease_holder(token, name), bool(leased), token, queue, int(attempt)
        )

    async def append_event(self, run_id: str, type: str, payload: str) -> int:
        rows = await self._run(
            self.q.append_event, {"run_id": run_id, "type": type, "payload": JsonText(payload)}
        )
        return int(rows[0][0])

    async def begin_run(self, run_id: str, owner: str, payload: str) -> None:
        await self._run(
            self.q.begin_run,
            {
                "run_id": run_id,
                "owner": owner,
                "token": owner_token(owner),
                "lease": self.lease,
                "type": "run.started",
                "payload": JsonText(payload),
            },
        )

    async def heartbeat(self, run_id: str, owner: str) -> bool:
        rows = await self._run(
            self.q.heartbeat,
            {"run_id": run_id, "owner": owner, "token": owner_token(owner), "lease": self.lease},
        )
        return bool(rows)

    async def complete_run(self, run_id: str, result: str, payload: str) -> None:
        await self._run(
            self.q.complete_run,
            {
                "run_id": run_id,
                "result": ExactJson(result),
                "type": "run.completed",
                "payload": JsonText(payload),
            },
        )

    async def fail_run(
        self, run_id: str, error: str, failure_class: str | None, payload: str
    ) -> None:
        await self._run(
            self.q.fail_run,
            {
                "run_id": run_id,
                "error": JsonText(error),
                "failure_class": failure_class,
                "type": "run.failed",
                "payload": JsonText(payload),
            },
        )

    async def get_step(self, run_id: str, key: str) -> StepRow | None:
        rows = await self._run(self.q.get_step, {"run_id": run_id, "key": key})
        return _step(rows[0]) if rows else None

    async def begin_step(
        self,
        run_id: str,
        key: str,
        *,
        input_hash: str,
        input: str,
        options: str,
        owner: str,
    ) -> StepRow:
        rows = await self._run(
            self.q.begin_step,
            {
                "run_id": run_id,
                "key": key,
                "input_hash": input_hash,
                "input": ExactJson(input),
                "options": JsonText(options),
                "owner": owner,
                "lease": self.lease,
            },
        )
        return _step(rows[0])

    async def complete_step(self, run_id: str, key: str, output: str) -> StepRow:
        rows = await self._run(
            self.q.complete_step, {"run_id": run_id, "key": key, "output": ExactJson(output)}
        )
        return _step(rows[0][:14])

    async def fail_step(self, run_id: str, key: str, error: str, decision: str) -> StepRow:
        rows = await self._run(
            self.q.fail_step,
            {"run_id": run_id, "key": key, "error": JsonText(error), "decision": decision},
        )
        return _step(rows[0])

    async def open_gate(
        self,
        run_id: str,
        name: str,
        prompt: str,
        data: str,
        gate_token: str,
        timeout: float | None = None,
    ) -> bool:
        """Open a pending gate (idempotent per name); ``timeout`` seconds: it expires then."""
        rows = await self._run(
            self.q.open_gate,
            {
                "run_id": run_id,
                "name": name,
                "prompt": prompt,
                "data": JsonText(data),
                "gate_token": gate_token,
                "timeout": timeout,
            },
        )
        return bool(rows)

    async def write_state(
        self, run_id: str, value: str, *, patch: bool, note: StateNote
    ) -> StateVersion | None:
        """Set or merge-patch the state (None: the run is finished)."""
        rows = await self._run(
            self.q.patch_state if patch else self.q.set_state,
            {
                "run_id": run_id,
                "value": JsonText(value),
                "op_key": None,
                "write_id": None,
                **note.params(),
            },
        )
        return await self._version(run_id, int(rows[0][0])) if rows else None

    async def save_state(self, run_id: str, label: str) -> StateVersion | None:
        """Label the current version (None: no state yet, or the run is finished)."""
        rows = await self._run(
            self.q.save_state, {"run_id": run_id, "label": label, "op_key": None, "write_id": None}
        )
        return await self._version(run_id, int(rows[0][0])) if rows else None

    async def _version(self, run_id: str, version: int) -> StateVersion:
        rows = await self._run(self.q.get_state_version, {"run_id": run_id, "version": version})
        return state_version(rows[0])

    async def insert_snapshot(
        self,
        run_id: str,
        *,
        stream: str,
        label: str,
        value: str,
        reason: str | None,
        metadata: str | None,
        created_by: str | None,
    ) -> SnapshotRow:
        rows = await self._run(
            self.q.insert_snapshot,
            {
                "run_id": run_id,
                "stream": stream,
                "label": label,
                "value": JsonText(value),
                "reason": reason,
                "metadata": None if metadata is None else JsonText(metadata),
                "created_by": created_by,
            },
        )
        return _snapshot(rows[0])

    async def record_usage(self, usage: UsageInput) -> bool:
        return await self._db.record_usage(usage)

    async def get_edge(self, run_id: str, edge: str) -> EdgeRow | None:
        rows = await self._run(self.q.get_edge, {"run_id": run_id, "edge": edge})
        return _edge(rows[0]) if rows else None

    async def create_child(
        self,
        parent_run_id: str,
        edge: str,
        *,
        child_run_id: str,
        workflow: str,
        input: str,
        input_hash: str,
        metadata: str,
        created_payload: str,
        edge_type: str,
        edge_metadata: str,
        recovery_webhook: str | None = None,
    ) -> EdgeRow:
        """The child run (pending, with its run.created event) and the edge to it."""
        await self._run(
            self.q.create_run,
            {
                "run_id": child_run_id,
                "workflow": workflow,
                "input": ExactJson(input),
                "input_hash": input_hash,
                "metadata": JsonText(metadata),
                "recovery_webhook": recovery_webhook,
                "payload": JsonText(created_payload),
            },
        )
        rows = await self._run(
            self.q.insert_edge,
            {
                "run_id": parent_run_id,
                "edge": edge,
                "child_run_id": child_run_id,
                "edge_type": edge_type,
                "metadata": JsonText(edge_metadata),
            },
        )
        return _edge(rows[0])

    async def claim(self, queue: str, owner: str) -> str | None:
        """Lease the best ready run of ``queue`` (within its caps) to the protocol worker
        ``owner``: the core's claim statement, which names the worker on the row and in the
        ``run.claimed`` entry. None when nothing is ready or a cap is reached."""
        token = owner_token(owner)
        rows = await self._run(
            self.qq.claim_queued,
            {
                "queue": queue,
                "key": advisory_key("tidebase.queue", self.schema, queue),
                "token": token,
                "host": None,
                "pid": None,
                "started": None,
                "lease": self.lease,
                "protocol_owner": owner,
            },
        )
        return str(rows[0][0]) if rows else None

    async def fail_queued(
        self, run_id: str, token: uuid.UUID, error: str, payload: str, delay: float
    ) -> str | None:
        """The core's failed-attempt transition of a queued run (fenced on ``token``): back to
        'queued' after ``delay`` while attempts remain, else 'failed' as max_retries."""
        rows = await self._run(
            self.qq.fail_queued,
            {
                "run_id": run_id,
                "token": token,
                "error": JsonText(error),
                "payload": JsonText(payload),
                "delay": delay,
                "write_id": None,
            },
        )
        return None if not rows else str(rows[0][0])

    async def create_run(
        self,
        *,
        run_id: str,
        workflow: str,
        input: str,
        input_hash: str,
        metadata: str | None,
        payload: str,
        recovery_webhook: str | None = None,
    ) -> bool:
        """Insert a pending run with its ``run.created`` event; False if the id is taken."""
        rows = await self._run(
            self.q.create_run,
            {
                "run_id": run_id,
                "workflow": workflow,
                "input": ExactJson(input),
                "input_hash": input_hash,
                "metadata": None if metadata is None else JsonText(metadata),
                "recovery_webhook": recovery_webhook,
                "payload": JsonText(payload),
            },
        )
        return bool(rows)

    async def add_channel(
        self,
        run_id: str,
        *,
        url: str,
        secret: str | None,
        events: str,
        gate_name: str | None = None,
    ) -> None:
        """A webhook channel of the run (or of its gate ``gate_name``)."""
        await self._run(
            self.q.insert_channel,
            {
                "run_id": run_id,
                "gate_name": gate_name,
                "url": url,
                "secret": secret,
                "events": JsonText(events),
            },
        )

    async def wait_at_gate(self, run_id: str, payload: str) -> None:
        await self._run(
            self.q.wait_at_gate,
            {"run_id": run_id, "type": "gate.opened", "payload": JsonText(payload)},
        )


class ProtocolStore:
    """Statements of the HTTP protocol, run on the pool of the server's ``AsyncTidebase``."""

    def __init__(self, tide: AsyncTidebase, *, lease_seconds: float | None = None) -> None:
        self._tide = tide
        self.schema = tide.settings.schema
        self.q = ProtocolQueries.for_schema(self.schema)
        self.qq = QueueQueries.for_schema(self.schema)
        self.lease_seconds = tide.settings.lease_seconds if lease_seconds is None else lease_seconds

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ProtocolTx]:
        async with self._tide._store.connection() as db, db._conn.transaction():
            yield ProtocolTx(db, self)

    async def create_run(
        self,
        *,
        run_id: str,
        workflow: str,
        input: str,
        input_hash: str,
        metadata: str | None,
        payload: str,
        recovery_webhook: str | None = None,
    ) -> bool:
        """Insert a pending run with its ``run.created`` event; False if the id is taken."""
        async with self._tide._store.connection() as db:
            rows = await db._write(
                self.q.create_run,
                {
                    "run_id": run_id,
                    "workflow": workflow,
                    "input": ExactJson(input),
                    "input_hash": input_hash,
                    "metadata": None if metadata is None else JsonText(metadata),
                    "recovery_webhook": recovery_webhook,
                    "payload": JsonText(payload),
                },
            )
        return bool(rows)

    async def get_run(self, run_id: str) -> RunRow | None:
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.get_run_row, {"run_id": run_id})
        return _row(rows[0]) if rows else None

    async def list_snapshots(self, run_id: str) -> list[SnapshotRow]:
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.list_snapshots, {"run_id": run_id})
        return [_snapshot(r) for r in rows]

    async def list_edges(self, run_id: str) -> list[EdgeRow]:
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.list_edges, {"run_id": run_id})
        return [_edge(r) for r in rows]

    async def list_runs(self, *, limit: int) -> list[RunRow]:
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.list_run_rows, {"limit": limit})
        return [_row(r) for r in rows]

    async def queue_stats(self) -> list[QueueRow]:
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.queue_stats, {})
        return [QueueRow(*r) for r in rows]

    async def configure_queue(
        self,
        name: str,
        *,
        given: set[str],
        concurrency: int | None,
        rate: int | None,
        invoke_url: str | None,
    ) -> QueueRow:
        """Set the fields in ``given`` (``concurrency``, ``rate``, ``invoke_url``); keep others."""
        async with self._tide._store.connection() as db:
            rows = await db._read(
                self.q.configure_queue,
                {
                    "name": name,
                    "concurrency": concurrency,
                    "rate": rate,
                    "invoke_url": invoke_url,
                    "set_concurrency": "concurrency" in given,
                    "set_rate": "rate" in given,
                    "set_invoke_url": "invoke_url" in given,
                },
            )
        r = rows[0]
        return QueueRow(r[0], True, r[1], r[2], r[3])

    async def schedule_times(self) -> dict[str, tuple[datetime, datetime]]:
        """When each schedule was created and last written."""
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.schedule_times, {})
        return {r[0]: (r[1], r[2]) for r in rows}

    async def expired_gates(
        self, run_id: str | None = None, limit: int = 100
    ) -> list[tuple[str, str]]:
        """(run id, gate name) of pending gates past their timeout."""
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.expired_gates, {"run_id": run_id, "limit": limit})
        return [(str(r[0]), str(r[1])) for r in rows]

    async def gate_expiries(self, run_id: str) -> dict[str, datetime]:
        """When each gate of the run with a timeout expires (or expired)."""
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.gate_expiries, {"run_id": run_id})
        return {str(r[0]): r[1] for r in rows}

    async def delete_channels(self, run_id: str) -> None:
        async with self._tide._store.connection() as db:
            await db._read(self.q.delete_channels, {"run_id": run_id})

    async def list_channels(self, run_id: str) -> list[ChannelRow]:
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.list_channels, {"run_id": run_id})
        return [_channel(r) for r in rows]

    async def acquire_channel(self, channel_id: int, lease: float) -> ChannelRow | None:
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.acquire_channel, {"id": channel_id, "lease": lease})
        return _channel(rows[0]) if rows else None

    async def advance_channel(self, channel_id: int, seq: int) -> None:
        async with self._tide._store.connection() as db:
            await db._read(self.q.advance_channel, {"id": channel_id, "seq": seq})

    async def release_channel(self, channel_id: int) -> None:
        async with self._tide._store.connection() as db:
            await db._read(self.q.release_channel, {"id": channel_id})

    async def insert_delivery(
        self, channel: ChannelRow, seq: int, event_type: str, payload: str
    ) -> int:
        async with self._tide._store.connection() as db:
            rows = await db._read(
                self.q.insert_delivery,
                {
                    "channel_id": channel.id,
                    "run_id": channel.run_id,
                    "gate_name": channel.gate_name,
                    "seq": seq,
                    "event_type": event_type,
                    "payload": JsonText(payload),
                },
            )
        return int(rows[0][0])

    async def finish_delivery(
        self, delivery_id: int, *, status: str, http_status: int | None, error_text: str | None
    ) -> None:
        async with self._tide._store.connection() as db:
            await db._read(
                self.q.finish_delivery,
                {
                    "id": delivery_id,
                    "status": status,
                    "http_status": http_status,
                    "error_text": error_text,
                },
            )

    async def list_deliveries(self, run_id: str) -> list[DeliveryRow]:
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.list_deliveries, {"run_id": run_id})
        return [
            DeliveryRow(
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                decode_json(r[5]) if isinstance(r[5], str | bytes) else r[5],
                r[6],
                r[7],
                r[8],
                r[9],
                r[10],
            )
            for r in rows
        ]

    async def channel_backlog(self, limit: int = 100) -> list[str]:
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.channel_backlog, {"limit": limit})
        return [str(r[0]) for r in rows]
