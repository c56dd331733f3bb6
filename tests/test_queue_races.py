"""Guarantee 12 under real concurrency: claims, caps and dedupe across processes and threads."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tidebase import Tidebase

from .test_queues import wait_for


def _max_overlap(track: Path) -> int:
    events = []
    for line in track.read_text().splitlines():
        tag, at = line.split()
        events.append((float(at), 1 if tag.startswith("+") else -1))
    events.sort(key=lambda e: (e[0], e[1]))  # an end before a start at the same instant
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def _rows(url: str, schema: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return conn.execute(query).fetchall()


def test_eight_claimers_over_500_runs(
    tide: Tidebase,
    spawn: Any,
    tmp_path: Path,
    tidebase_database_url: str,
    tidebase_schema: str,
) -> None:
    """Two worker processes × 4 slots: each run claimed once (on capped queues, under the queue
    lock, and on an uncapped one), the concurrency cap never exceeded, the rate cap held within
    its minute, claims in priority order."""
    track = tmp_path / "track"
    track.touch()
    tide.queues.configure("race", concurrency=3)
    tide.queues.configure("rated", rate_per_minute=20)
    runs = [
        tide.enqueue("track", queue="race", input={"i": i}, priority=i % 5).run.run_id
        for i in range(500)
    ]
    rated = [tide.enqueue("track", queue="rated", input={"i": i}).run.run_id for i in range(40)]
    # no caps: claimed without the queue lock, by FOR UPDATE SKIP LOCKED alone
    free = [tide.enqueue("track", queue="free", input={"i": i}).run.run_id for i in range(200)]
    workers = [
        spawn(
            "race,rated,free",
            tmp_path / "log",
            module="tests.queue_worker",
            CONCURRENCY="4",
            TRACK=str(track),
        )
        for _ in range(2)
    ]
    for w in workers:
        w.expect("READY")
    started = time.monotonic()

    def done() -> bool:
        counts = dict(
            _rows(
                tidebase_database_url,
                tidebase_schema,
                "SELECT queue_name, count(*) FROM runs WHERE status = 'completed' "
                "GROUP BY queue_name",
            )
        )
        return (
            counts.get("race", 0) == 500
            and counts.get("free", 0) == 200
            and counts.get("rated", 0) >= 20
        )

    wait_for(done, timeout=240, what="500 runs completed")
    elapsed = time.monotonic() - started
    for w in workers:
        w.proc.send_signal(signal.SIGTERM)
    for w in workers:
        w.expect("STOPPED")
        w.proc.wait(30)

    # every run claimed exactly once (one run.claimed, attempt 1), by one of the 8 slots
    started_events = dict(
        _rows(
            tidebase_database_url,
            tidebase_schema,
            "SELECT run_id, count(*) FROM events WHERE type = 'run.claimed' GROUP BY run_id",
        )
    )
    assert all(started_events.get(r) == 1 for r in runs + free)
    assert {r.attempt for r in tide.runs.list(limit=1000) if r.run_id in set(runs + free)} == {1}
    starts = [line for line in track.read_text().splitlines() if line.startswith("+")]
    assert len({s.split()[0] for s in starts}) == len(starts)  # no run's body ran twice
    # the concurrency cap of 3 held across both processes
    race_lines = track.with_suffix(".race")
    race_ids = set(runs)
    race_lines.write_text(
        "\n".join(
            line for line in track.read_text().splitlines() if line.split()[0][1:] in race_ids
        )
    )
    assert 1 <= _max_overlap(race_lines) <= 3
    # the rate cap: at most 20 claims of 'rated' in the first minute
    claimed = [r for r in rated if tide.runs.get(r).status != "queued"]
    if elapsed < 55:
        assert len(claimed) == 20
    # priorities: with every run ready from the start, claims (ordered by claimed_at, taken
    # under the queue lock) never go up in priority
    order = _rows(
        tidebase_database_url,
        tidebase_schema,
        "SELECT priority FROM runs WHERE queue_name = 'race' ORDER BY claimed_at",
    )
    priorities = [p for (p,) in order]
    assert priorities == sorted(priorities, reverse=True)


def test_sixteen_concurrent_enqueues_with_one_dedupe_key(tide: Tidebase) -> None:
    barrier = threading.Barrier(16)
    results: list[Any] = []
    clients = [Tidebase(tide.settings.database_url, schema=tide.settings.schema) for _ in range(4)]
    try:
        for c in clients:
            c.open()

        def enqueue(i: int) -> None:
            barrier.wait()
            results.append(clients[i % 4].enqueue("dd", dedupe_key="the-key", input={"i": i}))

        threads = [threading.Thread(target=enqueue, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for c in clients:
            c.close()
    assert len(results) == 16
    assert len({e.run.run_id for e in results}) == 1
    assert sum(not e.deduplicated for e in results) == 1
    [run_id] = {e.run.run_id for e in results}

    @tide.workflow("dd")
    def dd(run: Any, input: Any) -> str:
        return "done"

    stop = threading.Event()
    worker = threading.Thread(target=tide.work, kwargs={"stop": stop, "poll_s": 0.02})
    worker.start()
    try:
        wait_for(lambda: tide.runs.get(run_id).status == "completed")
    finally:
        stop.set()
        worker.join(30)
    again = tide.enqueue("dd", dedupe_key="the-key")
    assert not again.deduplicated and again.run.run_id != run_id
