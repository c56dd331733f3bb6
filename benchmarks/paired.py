"""The empty workflow against DBOS and the floor, in paired blocks.

    python -m benchmarks.paired [--url URL] [--blocks 30] [--per-block 200]

The main harness measures each library's empty workflows once per round, minutes apart, and
this machine drifts by ±25 % in that time, so one run's ratio can land anywhere in that band.
Here the floor, Tidebase and DBOS each live in a process of their own for the whole run and
run one block of ``--per-block`` empty workflows at the parent's word, in turn (the order
rotates from block to block). Each block gives one ratio measured within a second or two of
the other libraries' blocks; the report is the median and quartiles of those ratios.

Two pairs: a new run with no id given (``tide.run(name, fn)``, DBOS's ``empty()``), and a run
whose id the caller gives (``run_id=``, DBOS's ``SetWorkflowID``). The floor is one
``INSERT … ; COMMIT`` round trip on raw psycopg; the issue's unit is two of them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import IO, Any

from .databases import ROOT, create_database, drop_database, embedded_server

LIBRARIES = ("floor", "tidebase", "dbos")
WORKLOADS = {"floor": ("insert",), "tidebase": ("empty", "empty_id"), "dbos": ("empty", "empty_id")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a Postgres server URL (default: the embedded server)")
    parser.add_argument("--blocks", type=int, default=30)
    parser.add_argument("--per-block", type=int, default=200)
    args = parser.parse_args()
    print(json.dumps(measure(args.url or embedded_server(), args.blocks, args.per_block), indent=2))
    return 0


def measure(server: str, blocks: int, per_block: int) -> dict[str, Any]:
    """``blocks`` rounds of ``per_block`` workflows per workload, each library in a process and
    a fresh database of its own on ``server``; returns ``summarize``'s figures."""
    if blocks < 2:
        raise SystemExit("benchmarks.paired: quartiles need at least 2 blocks")
    databases = {lib: f"bench_paired_{lib}_{uuid.uuid4().hex[:8]}" for lib in LIBRARIES}
    children: dict[str, subprocess.Popen[str]] = {}
    started = time.time()
    timings: list[dict[str, float]] = []
    try:
        for lib, database in databases.items():
            url = create_database(server, database)
            children[lib] = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.paired", "--serve", lib, url],
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        jobs = [(lib, w) for lib in LIBRARIES for w in WORKLOADS[lib]]
        for lib, workload in jobs:  # warm up: caches, prepared statements, pools
            _ask(children[lib], lib, workload, per_block)
        for block in range(blocks):
            shift = block % len(jobs)
            timings.append(
                {
                    f"{lib}.{workload}": _ask(children[lib], lib, workload, per_block)
                    for lib, workload in jobs[shift:] + jobs[:shift]
                }
            )
    finally:
        for child in children.values():
            if child.stdin is not None:
                child.stdin.close()
            child.wait(timeout=60)
        for database in databases.values():
            drop_database(server, database)
    return summarize(timings, per_block, round(time.time() - started))


def summarize(blocks: list[dict[str, float]], per_block: int, took: int) -> dict[str, Any]:
    """Per-block ratios → median and quartiles (and the median µs of each workload)."""

    def spread(values: list[float], digits: int) -> dict[str, float]:
        q1, median, q3 = statistics.quantiles(values, n=4)
        return {"median": round(median, digits), "q1": round(q1, digits), "q3": round(q3, digits)}

    def ratio(of: Callable[[dict[str, float]], float]) -> dict[str, float]:
        return spread([of(b) for b in blocks], 3)

    return {
        "blocks": len(blocks),
        "per_block": per_block,
        "took_seconds": took,
        "us": {name: spread([b[name] for b in blocks], 0) for name in blocks[0]},
        "tidebase / dbos, new run": ratio(lambda b: b["tidebase.empty"] / b["dbos.empty"]),
        "tidebase / two floors, new run": ratio(
            lambda b: b["tidebase.empty"] / (2 * b["floor.insert"])
        ),
        "tidebase / dbos, id given": ratio(lambda b: b["tidebase.empty_id"] / b["dbos.empty_id"]),
        "tidebase / two floors, id given": ratio(
            lambda b: b["tidebase.empty_id"] / (2 * b["floor.insert"])
        ),
        "dbos / two floors, new run": ratio(lambda b: b["dbos.empty"] / (2 * b["floor.insert"])),
    }


def _ask(child: subprocess.Popen[str], library: str, workload: str, n: int) -> float:
    stdin: IO[str] | None = child.stdin
    stdout: IO[str] | None = child.stdout
    if stdin is None or stdout is None:
        raise TypeError("a paired child needs its stdin and stdout piped")
    stdin.write(f"{workload} {n}\n")
    stdin.flush()
    line = stdout.readline()
    if not line:
        raise SystemExit(f"benchmarks.paired: the {library} process died (its output is above)")
    return float(line)


def serve(library: str, url: str) -> None:
    """In a child: run blocks on request (``<workload> <n>`` in, µs per workflow out)."""
    workloads = _workloads(library, url)
    for request in sys.stdin:
        workload, n = request.split()
        fn = workloads[workload]
        start = time.perf_counter()
        for _ in range(int(n)):
            fn()
        print((time.perf_counter() - start) / int(n) * 1e6, flush=True)


def _workloads(library: str, url: str) -> dict[str, Callable[[], None]]:
    if library == "floor":
        import itertools

        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        conn.execute("CREATE TABLE floor (id bigint PRIMARY KEY, v jsonb)")
        ids = itertools.count()
        return {"insert": lambda: conn.execute("INSERT INTO floor VALUES (%s, '{}')", (next(ids),))}
    if library == "tidebase":
        from tidebase import Tidebase

        tide = Tidebase(url).open()

        def empty(run: Any, input: Any) -> None:
            return None

        return {
            "empty": lambda: tide.run("empty", empty),
            "empty_id": lambda: tide.run("empty", empty, run_id=str(uuid.uuid4())),
        }
    from dbos import SetWorkflowID

    from .dbos_workloads import _launch, empty

    _launch(url)

    def empty_id() -> None:
        with SetWorkflowID(str(uuid.uuid4())):
            empty()

    return {"empty": empty, "empty_id": empty_id}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(main())
