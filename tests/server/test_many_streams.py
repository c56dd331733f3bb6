"""Many event streams share one LISTEN connection: each gets every event once, in order, and
the server's Postgres connections do not grow with the number of streams."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import psycopg
import pytest

from tidebase import Tidebase

from .conftest import RunningServer, sse_events

pytestmark = pytest.mark.slow

STREAMS = 60
EVENTS = 20


def _backends(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_many_subscribers_one_listen_connection(
    tide: Tidebase, server: RunningServer, tidebase_database_url: str
) -> None:
    runs = [httpx.post(f"{server.url}/runs/wf", json={}).json()["run"]["id"] for _ in range(3)]
    before = _backends(tidebase_database_url)
    received: dict[int, list[tuple[int, dict[str, Any]]]] = {i: [] for i in range(STREAMS)}
    opened = threading.Barrier(STREAMS + 1, timeout=60)

    def watch(i: int) -> None:
        run_id = runs[i % len(runs)]
        with (
            httpx.Client(base_url=server.url, timeout=60) as client,
            client.stream("GET", f"/runs/{run_id}/events") as res,
        ):
            for n, item in enumerate(sse_events(res)):
                received[i].append(item)
                if n == 0:
                    opened.wait()  # run.created arrived: this stream is live

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(STREAMS)]
    for thread in threads:
        thread.start()
    opened.wait()
    during = _backends(tidebase_database_url)
    for n in range(EVENTS):
        for run_id in runs:
            tide.events.append(run_id, "custom.tick", {"n": n})
    for run_id in runs:
        tide.runs.cancel(run_id, reason="done")
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    print(f"backends: {before} before, {during} with {STREAMS} streams open")
    # One LISTEN connection plus the pool's (at most max_connections), not one per stream.
    assert during - before <= 1 + tide.settings.max_connections
    expected = [1, *range(2, EVENTS + 2), EVENTS + 2]
    for i, items in received.items():
        assert [seq for seq, _ in items] == expected, i
        assert [e["type"] for _, e in items][-1] == "run.cancelled"


def test_streams_survive_the_loss_of_the_listen_connection(
    tide: Tidebase, server: RunningServer, tidebase_database_url: str
) -> None:
    run_id = httpx.post(f"{server.url}/runs/wf", json={}).json()["run"]["id"]
    received: list[dict[str, Any]] = []
    first = threading.Event()

    def watch() -> None:
        with (
            httpx.Client(base_url=server.url, timeout=60) as client,
            client.stream("GET", f"/runs/{run_id}/events") as res,
        ):
            for _, event in sse_events(res):
                received.append(event)
                first.set()

    thread = threading.Thread(target=watch)
    thread.start()
    assert first.wait(30)
    with psycopg.connect(tidebase_database_url, autocommit=True) as conn:
        killed = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query ILIKE 'LISTEN %'"
        ).fetchall()
    assert killed == [(True,)]  # the hub's connection, and only it
    for n in range(3):
        tide.events.append(run_id, "custom.tick", {"n": n})
    tide.runs.cancel(run_id)
    thread.join(60)
    assert not thread.is_alive()
    assert [e["seq"] for e in received] == [1, 2, 3, 4, 5]
