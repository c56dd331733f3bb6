"""Lost connections, starved pools and cancelled tasks (DESIGN §3, guarantee 10).

- a write whose connection is cut while it is in flight is applied exactly once;
- the database going away while a step runs: the run completes once it is back;
- waiting for the database is said once, in Tidebase's words, and bounded by
  ``reconnect_seconds``;
- the heartbeat renews leases while every pooled connection is held;
- an async run cancelled by a cancel scope gives its lease back, and a finished execution's
  lease never locks its own process out.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
from psycopg import sql

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import DatabaseUnavailable, RunLocked
from tidebase_core import embedded
from tidebase_core.owner import Owner, let_go
from tidebase_core.store.records import ClaimRequest

from .test_embedded import destroy


def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.02)


def lock_waiters(url: str) -> int:
    """Tidebase's statements waiting on a lock in this test's database (another test process
    shares the server, not the database)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tidebase' "
            "AND datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    return int(row[0]) if row else 0


def cut_while_it_waits(url: str, fd: int, locker: psycopg.Connection[Any], what: str) -> None:
    """Once the statement on ``fd`` waits on ``locker``'s row lock, cut the client's side of its
    connection (the backend keeps waiting, then commits), wait for the retry to queue behind the
    same lock, then let both go. The lock is released whatever happens: a failed wait must not
    leave the statement blocked, or the test would hang instead of failing."""
    try:
        wait_until(lambda: lock_waiters(url) == 1, what=what)
        cut = socket.socket(fileno=socket.dup(fd))  # a duplicate: psycopg owns the fd
        cut.shutdown(socket.SHUT_RDWR)
        cut.close()
        wait_until(lambda: lock_waiters(url) == 2, what="the retry waits")
        locker.commit()
    finally:
        locker.close()


def test_a_write_cut_off_in_flight_is_applied_once(
    tide: Tidebase, tidebase_database_url: str, tidebase_schema: str
) -> None:
    """The connection breaks while the append waits on a lock; its backend lives on and commits
    later. The retry finds nothing yet, runs again, and the write id's unique index refuses
    the second copy: the retry then finds the first one's seq."""
    tide.run("wf", lambda run, _: 1, run_id="r")
    before = len(tide.runs.events("r"))
    locker = psycopg.connect(tidebase_database_url)
    locker.execute(
        sql.SQL("SELECT 1 FROM {}.runs WHERE run_id = 'r' FOR UPDATE").format(
            sql.Identifier(tidebase_schema)
        )
    )
    outcome: list[Any] = []
    with tide._store.connection() as db:
        fd = db._conn.fileno()

        def append() -> None:
            try:
                outcome.append(db.append_event(run_id="r", type="note", payload='{"n": 1}'))
            except BaseException as exc:
                outcome.append(exc)

        writer = threading.Thread(target=append)
        writer.start()
        cut_while_it_waits(tidebase_database_url, fd, locker, what="the write waits")
        writer.join(30)
    assert not writer.is_alive()
    events = tide.runs.events("r")
    notes = [e for e in events if e.type == "note"]
    assert len(notes) == 1
    assert outcome == [notes[0].seq]
    assert len(events) == before + 1
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An embedded server of this test's own, to stop and start (never the session's)."""
    home = tmp_path / "h"
    try:
        yield home, embedded.start(home)
    finally:
        destroy(home)


@pytest.mark.slow
def test_a_step_running_while_the_database_is_away_completes_after_it_is_back(
    own_server: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    home, url = own_server
    # The outage (3 s) is longer than reconnect_seconds: the wait starts when a write notices.
    with Tidebase(url, schema="s", reconnect_seconds=2) as tide:
        ran: list[str] = []

        def away() -> str:
            ran.append("away")
            embedded.stop(home, mode="fast")
            time.sleep(3)
            embedded.start(home)
            return "done"

        def wf(run: RunContext, _: None) -> list[str]:
            run.state.set({"phase": "before"})
            out = [run.step("away", away)]
            run.state.set({"phase": "after"})
            run.events.emit("progress", {"n": 1})
            out.append(run.step("next", lambda: "next"))
            return out

        assert tide.run("wf", wf, run_id="r") == ["done", "next"]
        assert ran == ["away"]
        run = tide.runs.get("r")
        assert (run.status, run.attempt) == ("completed", 1)
        events = tide.runs.events("r")
        assert [e.seq for e in events] == list(range(1, len(events) + 1))


@pytest.mark.slow
def test_waiting_for_the_database_is_said_once_and_bounded(
    own_server: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    home, url = own_server
    with Tidebase(url, schema="s", reconnect_seconds=2) as tide:
        tide.run("wf", lambda run, _: run.step("a", lambda: 1), run_id="r")
        embedded.stop(home, mode="immediate")
        caplog.set_level(logging.INFO)
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match=r"within 2s.*reconnect_seconds"):
            tide.events.append("r", "note")
        assert time.monotonic() - started < 15
    ours = [r for r in caplog.records if r.name == "tidebase" and r.levelno == logging.WARNING]
    assert len(ours) == 1, [r.getMessage() for r in ours]
    message = ours[0].getMessage()
    assert "waiting for the database" in message
    assert "up to 2s" in message and "reconnect_seconds" in message
    pool_noise = [r for r in caplog.records if r.name.startswith("psycopg.pool")]
    assert not [r for r in pool_noise if r.levelno >= logging.WARNING], [
        r.getMessage() for r in pool_noise
    ]
    embedded.start(home)


@pytest.mark.slow
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_once_the_database_is_back_a_new_run_is_not_kept_waiting_by_the_pools_backoff(
    own_server: tuple[Path, str], flavour: str
) -> None:
    """psycopg_pool replaces a connection an outage broke on a schedule of its own, retrying at
    1, 3, 7, 15 … s. The database back after 8 s, the replacement would come at 15 s: a run
    started meanwhile waited out ``reconnect_seconds`` and failed, told that every pooled
    connection was busy (the 1,000-run chaos test hit it). A replacement that fails is given
    up at once, and the pool grows again when a run asks for a connection."""
    home, url = own_server

    def scenario(run_once: Callable[[str], Any]) -> None:
        assert run_once("warm") == "warm"  # the pool's one connection, now idle
        time.sleep(1.1)  # idle long enough to be checked before it is handed out again
        embedded.stop(home, mode="fast")
        with pytest.raises(DatabaseUnavailable):  # finds it dead: the pool replaces it
            run_once("during")
        time.sleep(6)  # the pool's attempts at 0, 1, 3 and 7 s all fail
        embedded.start(home)
        assert run_once("after") == "after"

    if flavour == "sync":
        with Tidebase(url, schema="s", max_connections=1, reconnect_seconds=2) as tide:
            scenario(lambda rid: tide.run("wf", lambda run, _: rid, run_id=rid))
        return

    async def main() -> None:
        async with AsyncTidebase(url, schema="s", max_connections=1, reconnect_seconds=2) as atide:

            async def body(run: AsyncRunContext, _: None) -> str:
                return run.run_id

            loop = asyncio.get_running_loop()
            await loop.run_in_executor(
                None,
                scenario,
                lambda rid: asyncio.run_coroutine_threadsafe(
                    atide.run("wf", body, run_id=rid), loop
                ).result(),
            )

    asyncio.run(main())


def take_every_slot_left(url: str, into: list[psycopg.Connection[Any]]) -> None:
    """Connect until the server refuses: another client holding every slot it has."""
    while True:
        into.append(psycopg.connect(url, autocommit=True))


@pytest.mark.slow
def test_a_full_server_is_told_apart_from_a_busy_pool(
    own_server: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Every client of the server together took its max_connections: raising this client's
    max_connections (what "every pooled connection is busy" advises) would not help, so the
    error says which limit was reached. While the run waits, the log says so once, in
    Tidebase's words, instead of psycopg_pool's warning at every attempt to grow."""
    home, url = own_server
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET max_connections = 8")
    embedded.stop(home, mode="fast")
    url = embedded.start(home)
    others: list[psycopg.Connection[Any]] = []
    holding, release = threading.Semaphore(0), threading.Event()

    def hold(run: RunContext, _: None) -> bool:
        holding.release()
        return release.wait(30)

    with Tidebase(url, schema="s", max_connections=3, reconnect_seconds=2) as tide:
        assert tide.run("wf", lambda run, _: "warm", run_id="warm") == "warm"
        with pytest.raises(psycopg.OperationalError, match="too many clients"):
            take_every_slot_left(url, others)
        pooled = tide._store._pool.get_stats()["pool_size"]  # type: ignore[union-attr]
        assert 0 < pooled < 3
        holders = [
            threading.Thread(target=tide.run, args=("wf", hold), kwargs={"run_id": f"h{k}"})
            for k in range(pooled)
        ]
        for holder in holders:
            holder.start()
        try:
            for _ in holders:  # each runs on one of the pool's connections
                assert holding.acquire(timeout=10)
            caplog.clear()
            with caplog.at_level(logging.WARNING), pytest.raises(DatabaseUnavailable) as info:
                tide.run("wf", lambda run, _: 1, run_id="second")
        finally:
            release.set()
            for holder in holders:
                holder.join(30)
            for conn in others:
                conn.close()
    message = str(info.value)
    assert f"holds {pooled} of its 3 connections and Postgres refuses more" in message, message
    assert "server's max_connections" in message and "busy" not in message, message
    said = [r for r in caplog.records if r.name == "tidebase"]
    assert len(said) == 1 and "refuses more connections" in said[0].getMessage(), said
    after = caplog.records[caplog.records.index(said[0]) :]
    assert not [r for r in after if r.name.startswith("psycopg.pool")], after


def test_reconnect_seconds_is_an_option_and_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tidebase_database_url: str
) -> None:
    assert Tidebase(tidebase_database_url).settings.reconnect_seconds == 60
    assert Tidebase(tidebase_database_url, reconnect_seconds=5).settings.reconnect_seconds == 5
    monkeypatch.setenv("TIDEBASE_RECONNECT_SECONDS", "7.5")
    assert Tidebase(tidebase_database_url).settings.reconnect_seconds == 7.5
    from tidebase.errors import ConfigurationError

    with pytest.raises(ConfigurationError, match="reconnect_seconds"):
        Tidebase(tidebase_database_url, reconnect_seconds=0)


@pytest.mark.slow
def test_the_heartbeat_is_not_starved_when_runs_hold_every_pooled_connection(
    tidebase_database_url: str, tidebase_schema: str
) -> None:
    """Two runs hold the whole pool (max_connections=2) through steps three leases long: their
    leases stay live (another worker cannot take them over) and each step runs once."""
    lease = 0.6
    executed: list[str] = []
    inside = threading.Barrier(3)
    release = threading.Event()

    def wf(run: RunContext, k: int) -> int:
        def slow() -> int:
            executed.append(run.run_id)
            inside.wait(10)
            release.wait(10)
            return k

        return int(run.step("slow", slow))

    with (
        Tidebase(
            tidebase_database_url, schema=tidebase_schema, lease_seconds=lease, max_connections=2
        ) as tide,
        Tidebase(tidebase_database_url, schema=tidebase_schema, lease_seconds=lease) as other,
    ):
        results: dict[str, Any] = {}

        def start(run_id: str, k: int) -> None:
            results[run_id] = tide.run("wf", wf, run_id=run_id, input=k)

        threads = [threading.Thread(target=start, args=(f"r{k}", k)) for k in range(2)]
        for t in threads:
            t.start()
        inside.wait(10)
        deadline = time.monotonic() + 4 * lease
        while time.monotonic() < deadline:
            for k in range(2):
                # Claiming a run whose lease lapsed would take it over: it must stay locked.
                with pytest.raises(RunLocked):
                    other.run("wf", wf, run_id=f"r{k}", input=k)
            time.sleep(lease / 4)
        release.set()
        for t in threads:
            t.join(20)
        assert results == {"r0": 0, "r1": 1}
        assert sorted(executed) == ["r0", "r1"]


def _slow_workflow(started: asyncio.Event) -> Any:
    async def wf(run: AsyncRunContext, _: None) -> str:
        async def slow() -> str:
            started.set()
            await asyncio.sleep(30)
            return "slow"

        return str(await run.step("slow", slow))

    return wf


async def _fast(run: AsyncRunContext, _: None) -> str:
    return str(await run.step("slow", lambda: "fast"))


@pytest.mark.parametrize("scope", ["anyio.move_on_after", "asyncio.timeout"])
async def test_an_async_run_cancelled_by_a_cancel_scope_gives_its_lease_back(
    atide: AsyncTidebase, scope: str
) -> None:
    started = asyncio.Event()
    run_id = f"cancelled-{scope}"
    if scope == "anyio.move_on_after":
        with anyio.move_on_after(0.5) as cancel:
            await atide.run("wf", _slow_workflow(started), run_id=run_id)
        assert cancel.cancelled_caught
    else:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await atide.run("wf", _slow_workflow(started), run_id=run_id)
    assert started.is_set()
    run = await atide.runs.get(run_id)
    assert run.status != "running" and run.lease_expires_at is None, run
    # Re-invoked from the same process at once: not RunLocked, and the step runs again (its
    # first execution never finished).
    assert await atide.run("wf", _fast, run_id=run_id) == "fast"


async def test_a_lease_left_by_a_finished_execution_of_this_process_is_void(
    atide: AsyncTidebase,
) -> None:
    """A lease whose execution in this very process has ended (its release never ran) does not
    lock the process out for the lease's duration; a live one does."""
    run_id = "left-behind"
    leftover = Owner.new()
    let_go(leftover.token)  # its execution finished without releasing the lease
    async with atide._store.connection() as db:
        claim = await db.claim_run(
            ClaimRequest(run_id, "wf", "null", "h", False, None, leftover, lease=60)
        )
    assert claim is not None and claim.claimed
    assert await atide.run("wf", _fast, run_id=run_id) == "fast"
    run = await atide.runs.get(run_id)
    assert (run.status, run.attempt) == ("completed", 2)

    # A live execution of this process keeps its lease.
    started = asyncio.Event()
    task = asyncio.create_task(atide.run("wf", _slow_workflow(started), run_id="live"))
    await asyncio.wait_for(started.wait(), 10)
    with pytest.raises(RunLocked):
        await atide.run("wf", _fast, run_id="live")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.slow
async def test_the_async_heartbeat_outlives_sync_steps_holding_the_blocking_pool(
    tidebase_database_url: str, tidebase_schema: str
) -> None:
    """Two sync steps in threads (``asyncio.to_thread``) hold both connections of the async
    client's blocking pool for several leases: the lease stays live all along."""
    from tidebase_core.operations import blocking_run

    lease = 0.6
    release = threading.Event()
    holding = threading.Barrier(3)

    def hold(run: AsyncRunContext) -> None:
        with blocking_run(run):  # a pooled connection of the blocking twin, held
            holding.wait(10)
            release.wait(10)

    async def wf(run: AsyncRunContext, _: None) -> str:
        await asyncio.gather(asyncio.to_thread(hold, run), asyncio.to_thread(hold, run))
        return "done"

    async with AsyncTidebase(
        tidebase_database_url, schema=tidebase_schema, lease_seconds=lease
    ) as atide:
        with Tidebase(tidebase_database_url, schema=tidebase_schema) as other:
            task = asyncio.create_task(atide.run("wf", wf, run_id="held"))
            await asyncio.to_thread(holding.wait, 10)
            deadline = time.monotonic() + 4 * lease
            while time.monotonic() < deadline:
                with pytest.raises(RunLocked):
                    await asyncio.to_thread(other.run, "wf", _noop, run_id="held")
                await asyncio.sleep(lease / 4)
            release.set()
            assert await task == "done"


def _noop(run: RunContext, _: None) -> str:
    return "taken over"


def test_settling_a_parked_step_survives_its_connection_being_cut(
    tide: Tidebase, tidebase_database_url: str, tidebase_schema: str
) -> None:
    """retry_step's transaction is cut while it waits for the run's lock: it runs again on a
    new connection and the step is released once (one step.retry_approved event)."""

    def wf(run: RunContext, _: None) -> int:
        return int(run.step("pay", lambda: 1 / 0, side_effects=["payment"]))

    with pytest.raises(ZeroDivisionError):
        tide.run("wf", wf, run_id="parked")
    locker = psycopg.connect(tidebase_database_url)
    locker.execute(
        sql.SQL("SELECT 1 FROM {}.runs WHERE run_id = 'parked' FOR UPDATE").format(
            sql.Identifier(tidebase_schema)
        )
    )
    outcome: list[Any] = []
    with tide._store.connection() as db:
        fd = db._conn.fileno()

        def settle() -> None:
            try:
                outcome.append(
                    db.resolve_parked_step(
                        run_id="parked",
                        key="pay",
                        output=None,
                        event_type="step.retry_approved",
                        payload="{}",
                    )[0]
                )
            except BaseException as exc:
                outcome.append(exc)

        settler = threading.Thread(target=settle)
        settler.start()
        cut_while_it_waits(tidebase_database_url, fd, locker, what="the settle waits")
        settler.join(30)
    assert outcome == ["ok"]
    events = tide.runs.events("parked")
    assert [e.type for e in events].count("step.retry_approved") == 1
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert tide.runs.steps("parked")[0].resume_decision == "safe_replay"
