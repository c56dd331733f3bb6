"""python -m benchmarks.queues: queue claim throughput, Tidebase and DBOS queues side by side.

    python -m benchmarks.queues [--url URL] [--runs 2000] [--workers 1,4,16]

For each worker count W and library: a fresh database, N no-op workflows enqueued first (one
process), then W worker slots (processes of up to 4 slots each) drain the queue. Throughput is
measured in the database, from the first completion to the last: (N − 1) / (last − first), so
process start-up and enqueueing are not counted for either library. DBOS's queue polls every
``polling_interval_sec`` even while busy (1 s by default); it is set to Tidebase's busy
behaviour's nearest equivalent here (0.01 s), which favours DBOS.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from .databases import ROOT, create_database, drop_database, embedded_server

SLOTS_PER_PROCESS = 4


# -- children -----------------------------------------------------------------------------------


def tidebase_child(role: str, url: str, runs: int, concurrency: int) -> None:
    from tidebase import Tidebase

    tide = Tidebase(url, max_connections=concurrency + 3)

    @tide.workflow("noop")
    def noop(run: Any, input: Any) -> None:
        return None

    if role == "enqueue":
        for i in range(runs):
            tide.enqueue("noop", queue="bench", input={"i": i})
        tide.close()
        return
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("READY", flush=True)
    tide.work(["bench"], concurrency=concurrency, stop=stop, poll_s=0.01)
    tide.close()


def dbos_child(role: str, url: str, runs: int, concurrency: int) -> None:
    from dbos import DBOS

    @DBOS.workflow()
    def noop_wf(i: int) -> None:
        return None

    DBOS(
        config={
            "name": "bench",
            "system_database_url": url,
            "sys_db_pool_size": concurrency + 3,
            "log_level": "WARNING",
        }
    )
    if role == "enqueue":
        DBOS.listen_queues([])  # this process only enqueues
    DBOS.launch()
    queue = DBOS.register_queue("bench", worker_concurrency=concurrency, polling_interval_sec=0.01)
    if role == "enqueue":
        for i in range(runs):
            queue.enqueue(noop_wf, i)
        DBOS.destroy()
        return
    print("READY", flush=True)
    signal.sigwait({signal.SIGTERM})
    DBOS.destroy()
    os._exit(0)


# -- the parent ---------------------------------------------------------------------------------

COMPLETED = {
    "tidebase": (
        "SELECT count(*), extract(epoch FROM max(completed_at) - min(completed_at)) "
        "FROM tidebase.runs WHERE status = 'completed'"
    ),
    "dbos": (
        "SELECT count(*), (max(updated_at) - min(updated_at)) / 1000.0 "
        "FROM dbos.workflow_status WHERE status = 'SUCCESS'"
    ),
}


def _child(library: str, role: str, url: str, runs: int, concurrency: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.queues",
            "--child",
            library,
            role,
            url,
            str(runs),
            str(concurrency),
        ],
        cwd=ROOT,
        env={**os.environ, "TIDEBASE_AUTO_MIGRATE": "1"},
        stdout=subprocess.PIPE,
        text=True,
    )


def measure(library: str, url: str, runs: int, workers: int) -> dict[str, Any]:
    enqueue = _child(library, "enqueue", url, runs, 1)
    if enqueue.wait(600) != 0:
        raise SystemExit(f"{library}: enqueueing failed")
    processes = max(1, math.ceil(workers / SLOTS_PER_PROCESS))
    slots = [workers // processes + (1 if i < workers % processes else 0) for i in range(processes)]
    procs = [_child(library, "work", url, runs, n) for n in slots]
    try:
        for p in procs:
            assert p.stdout is not None
            if p.stdout.readline().strip() != "READY":
                raise SystemExit(f"{library}: a worker did not start")
        deadline = time.monotonic() + 600
        while True:
            with psycopg.connect(url) as conn:
                row = conn.execute(COMPLETED[library]).fetchone()
            assert row is not None
            done, span = int(row[0]), float(row[1] or 0.0)
            if done >= runs:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{library}: only {done}/{runs} completed")
            time.sleep(0.1)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
    return {
        "library": library,
        "workers": workers,
        "processes": processes,
        "runs": runs,
        "seconds": span,
        "runs_per_s": (runs - 1) / span if span > 0 else float("inf"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.queues", description=__doc__)
    parser.add_argument("--url", help="a Postgres server URL (default: the embedded server)")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--workers", default="1,4,16")
    parser.add_argument("--libraries", default="tidebase,dbos")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    server = args.url or embedded_server()
    results = []
    for workers in [int(w) for w in args.workers.split(",")]:
        for library in args.libraries.split(","):
            database = f"bench_q_{library}_{uuid.uuid4().hex[:8]}"
            url = create_database(server, database)
            try:
                result = measure(library, url, args.runs, workers)
            finally:
                drop_database(server, database)
            results.append(result)
            print(
                f"{library:9} {workers:3} workers ({result['processes']} processes): "
                f"{result['runs_per_s']:8.0f} runs/s",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "queues.jsonl", "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    lines = [
        "| workers | " + " | ".join(args.libraries.split(",")) + " | ratio |",
        "|---|---|---|---|",
    ]
    for workers in sorted({r["workers"] for r in results}):
        by = {r["library"]: r["runs_per_s"] for r in results if r["workers"] == workers}
        ratio = by.get("tidebase", 0) / by["dbos"] if by.get("dbos") else float("nan")
        lines.append(
            f"| {workers} | "
            + " | ".join(f"{by.get(lib, float('nan')):.0f}" for lib in args.libraries.split(","))
            + f" | {ratio:.2f} |"
        )
    (args.out / "queues.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        library, role, url, runs, concurrency = sys.argv[2:7]
        child = tidebase_child if library == "tidebase" else dbos_child
        child(role, url, int(runs), int(concurrency))
        raise SystemExit(0)
    raise SystemExit(main())
