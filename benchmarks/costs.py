"""Quick cost figures on the embedded server (one process, medians of 3 rounds).

    python benchmarks/costs.py

Prints µs per operation next to the floor (one raw ``INSERT … ; COMMIT`` round trip), the
statements a 1000-step replay sends, and the append throughput of 8 concurrent writers. The
side-by-side comparison with DBOS Transact is the benchmark harness's job (issue 7); this is
the quick look for development.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
import uuid
from collections.abc import Callable

import psycopg

from tidebase import RunContext, Tidebase
from tidebase_core._sync.store import StoreConnection

N = 1000
ROUNDS = 3


def median_us(fn: Callable[[], float]) -> tuple[float, list[float]]:
    samples = [fn() for _ in range(ROUNDS)]
    return statistics.median(samples), samples


def main() -> None:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    tide = Tidebase(schema=schema).open()
    url = tide._store.url
    assert url is not None
    rows: list[tuple[str, float, list[float]]] = []

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {schema}.floor (id bigint PRIMARY KEY, v jsonb)")
        counter = iter(range(10**9))

        def floor() -> float:
            start = time.perf_counter()
            for _ in range(N):
                conn.execute(f"INSERT INTO {schema}.floor VALUES (%s, '{{}}')", (next(counter),))
            return (time.perf_counter() - start) / N * 1e6

        rows.append(("floor: INSERT … COMMIT", *median_us(floor)))

    def steps(run: RunContext, input: None) -> int:
        for _ in range(N):
            run.step("noop", lambda: None)
        return N

    def first_exec() -> float:
        start = time.perf_counter()
        tide.run("steps", steps, run_id=str(uuid.uuid4()))
        return (time.perf_counter() - start) / N * 1e6

    rows.append(("step, first execution", *median_us(first_exec)))

    def patches(run: RunContext, input: None) -> None:
        run.state.set({"n": 0})
        start = time.perf_counter()
        for i in range(N):
            run.state.patch({"n": i, "phase": "working"})
        timings.append((time.perf_counter() - start) / N * 1e6)

    def emits(run: RunContext, input: None) -> None:
        start = time.perf_counter()
        for i in range(N):
            run.events.emit("bench.tick", {"i": i})
        timings.append((time.perf_counter() - start) / N * 1e6)

    for label, wf in (("state.patch", patches), ("events.emit (in a run)", emits)):
        timings: list[float] = []
        for _ in range(ROUNDS):
            tide.run(label, wf, run_id=str(uuid.uuid4()))
        rows.append((label, statistics.median(timings), timings))

    target = str(uuid.uuid4())
    tide.run("target", lambda run, input: None, run_id=target)

    def append_one() -> float:
        start = time.perf_counter()
        for i in range(N):
            tide.events.append(target, "bench.tick", {"i": i})
        return (time.perf_counter() - start) / N * 1e6

    rows.append(("tide.events.append", *median_us(append_one)))

    floor_us = rows[0][1]
    print(f"{'operation':<28}{'µs (median)':>12}{'× floor':>9}   rounds")
    for label, med, samples in rows:
        print(f"{label:<28}{med:>12.0f}{med / floor_us:>9.2f}   {[round(s) for s in samples]}")

    # 8 concurrent appenders on one run
    def burst() -> float:
        barrier = threading.Barrier(8)

        def writer() -> None:
            barrier.wait()
            for i in range(250):
                tide.events.append(target, "bench.burst", {"i": i})

        threads = [threading.Thread(target=writer) for _ in range(8)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return 2000 / (time.perf_counter() - start)

    rate, samples = median_us(burst)
    print(f"8 concurrent appenders, one run: {rate:.0f} events/s  {[round(s) for s in samples]}")

    # statements sent by a replay of a 1000-step run
    def crashing(run: RunContext, input: None) -> int:
        steps(run, input)
        if run.attempt == 1:
            raise RuntimeError("crash")
        return N

    run_id = str(uuid.uuid4())
    with contextlib.suppress(RuntimeError):
        tide.run("crashing", crashing, run_id=run_id)
    sent: list[str] = []
    original = StoreConnection._execute

    def counting(self: StoreConnection, query: str, params: object) -> object:
        sent.append(query)
        return original(self, query, params)  # type: ignore[arg-type]

    StoreConnection._execute = counting  # type: ignore[method-assign]
    tide._heartbeat.stop()
    tide.run("crashing", crashing, run_id=run_id)
    StoreConnection._execute = original  # type: ignore[method-assign]
    print(f"statements for replaying {N} steps and completing the run: {len(sent)}")

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
    tide.close()


if __name__ == "__main__":
    main()
