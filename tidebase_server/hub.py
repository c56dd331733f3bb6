"""One LISTEN connection per server process for all of its event streams.

``tide.runs.subscribe`` holds a Postgres connection per subscriber; a server with hundreds of
open streams would exhaust Postgres' connections. The hub LISTENs once per watched run on a
single connection and wakes that run's subscribers, which then read the log through the pool
(catching up by seq, so a wake-up is only a hint and none can be lost). The subscribers of one
run share their reads (``read``): one query per wake-up for all of them, not one each.
Writers NOTIFY only while a run is watched (``runs.watched_until``), so the hub keeps renewing
the watch of every run it has subscribers for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import sql

from tidebase_core._async.client import AsyncTidebase
from tidebase_core.models import Event
from tidebase_core.store.queries import channel, listen_statement

__all__ = ["EventHub"]

log = logging.getLogger("tidebase.server")

WATCH_SECONDS = 60.0
RENEW_SECONDS = 20.0
# How long the reader holds the connection before letting a LISTEN/UNLISTEN through.
TURN_SECONDS = 0.1


class _Channel:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.wakers: set[asyncio.Event] = set()
        self.ready = asyncio.Event()  # LISTEN has been executed
        # Notifications received for the run (and reconnects, which may have missed some).
        self.version = 0
        # The last read of the log, shared by the run's subscribers: the events after
        # ``cached_after`` as of a moment when ``version`` was ``cached_version`` (a read that
        # starts after a notification arrived sees what it announced: NOTIFY follows COMMIT).
        self.lock = asyncio.Lock()
        self.cached_version = -1
        self.cached_after = 0
        self.cached: list[Event] = []
        self.cached_full = False  # the read hit its limit: more may follow it


class EventHub:
    def __init__(self, tide: AsyncTidebase) -> None:
        self._tide = tide
        self._conn: psycopg.AsyncConnection[tuple[object, ...]] | None = None
        self._channels: dict[str, _Channel] = {}
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    async def _start(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        async with self._lock:
            if self._conn is None:
                self._conn = await self._tide._store._connect()
                self._tasks = [
                    asyncio.create_task(self._read(), name="tidebase-hub-read"),
                    asyncio.create_task(self._renew(), name="tidebase-hub-renew"),
                ]
            return self._conn

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks = []
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    @asynccontextmanager
    async def subscribe(self, run_id: str) -> AsyncIterator[asyncio.Event]:
        """An event set whenever ``run_id``'s log may have grown (set once at the start)."""
        conn = await self._start()
        name = channel(self._tide.settings.schema, run_id)
        waker = asyncio.Event()
        waker.set()
        entry = self._channels.get(name)
        first = entry is None
        if entry is None:
            entry = self._channels[name] = _Channel(run_id)
        entry.wakers.add(waker)
        try:
            if first:
                await conn.execute(listen_statement(name))
                await self._watch([run_id])
                entry.ready.set()
            else:
                await entry.ready.wait()
            yield waker
        finally:
            entry.wakers.discard(waker)
            if not entry.wakers and self._channels.get(name) is entry:
                del self._channels[name]
                with contextlib.suppress(Exception):
                    await conn.execute(sql.SQL("UNLISTEN {}").format(sql.Identifier(name)))

    async def read(self, run_id: str, after: int, limit: int) -> list[Event]:
        """The run's events after ``after`` (at most ``limit``), current as of every
        notification received so far: one query serves every subscriber of the run that asks
        meanwhile (single flight). Raises ``RunNotFound`` like ``tide.runs.events``."""
        entry = self._channels.get(channel(self._tide.settings.schema, run_id))
        if entry is None:
            return await self._tide.runs.events(run_id, after_seq=after, limit=limit)
        wanted = entry.version
        async with entry.lock:
            if (
                entry.cached_version >= wanted
                and entry.cached_after <= after
                and not entry.cached_full
            ):
                return [e for e in entry.cached if e.seq > after][:limit]
            started = entry.version
            batch = await self._tide.runs.events(run_id, after_seq=after, limit=limit)
            entry.cached_version = started
            entry.cached_after = after
            entry.cached = batch
            entry.cached_full = len(batch) >= limit
            return batch

    async def _read(self) -> None:
        while True:
            conn = self._conn
            assert conn is not None
            try:
                async for note in conn.notifies(timeout=TURN_SECONDS):
                    entry = self._channels.get(note.channel)
                    if entry is not None:
                        entry.version += 1
                        for waker in entry.wakers:
                            waker.set()
                await asyncio.sleep(0)  # let a queued LISTEN take the connection
            except psycopg.OperationalError as exc:
                log.warning("event hub lost its connection (%s); reconnecting", exc)
                await self._reconnect()

    async def _reconnect(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await self._tide._store._connect()
                for name in list(self._channels):
                    await conn.execute(listen_statement(name))
                break
            except psycopg.OperationalError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        old, self._conn = self._conn, conn
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        for entry in self._channels.values():  # anything missed meanwhile is in the log
            entry.version += 1
            for waker in entry.wakers:
                waker.set()

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_SECONDS)
            try:
                await self._watch([entry.run_id for entry in self._channels.values()])
            except Exception as exc:  # the next round tries again
                log.warning("event hub could not renew its watches: %s", exc)

    async def _watch(self, run_ids: list[str]) -> None:
        if not run_ids:
            return
        async with self._tide._store.connection() as db:
            for run_id in run_ids:
                await db.watch(run_id, WATCH_SECONDS)
