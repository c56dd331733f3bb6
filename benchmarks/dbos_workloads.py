"""DBOS Transact's side of every figure (runs in a child process of its own).

The same workloads written the way DBOS documents them: ``@DBOS.workflow`` functions calling
``@DBOS.step`` functions, recovery by ``DBOS.launch()``, ``DBOS.set_event`` as the nearest
analogue of appending to a run's event log.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from dbos import DBOS, SetWorkflowID

POOL = 16
_inside: dict[str, float] = {}  # when the (recovered) workflow entered and returned


@DBOS.step()
def noop() -> None:
    return None


@DBOS.step()
async def anoop() -> None:
    return None


@DBOS.workflow()
def steps(n: int) -> int:
    for _ in range(n):
        noop()
    return n


@DBOS.workflow()
def crash_after_steps(n: int) -> int:
    _inside["start"] = time.perf_counter()
    for _ in range(n):
        noop()
    if os.environ.get("BENCH_CRASH") == "1":
        os._exit(0)  # the process dies right after its N-th step
    _inside["end"] = time.perf_counter()
    return n


@DBOS.workflow()
def empty() -> None:
    return None


@DBOS.workflow()
async def ten() -> None:
    for _ in range(10):
        await anoop()


@DBOS.workflow()
def set_events(writer: int, count: int) -> None:
    for i in range(count):
        DBOS.set_event(f"tick-{writer}", i)


def _launch(url: str) -> None:
    DBOS(
        config={
            "name": "bench",
            "system_database_url": url,
            "sys_db_pool_size": POOL,
            "log_level": "WARNING",
        }
    )
    DBOS.launch()


def crash(url: str, n: int, run_id: str) -> None:
    """Grandchild: execute N steps of workflow ``run_id`` and die."""
    os.environ["BENCH_CRASH"] = "1"
    _launch(url)
    with SetWorkflowID(run_id):
        crash_after_steps(n)


def run(url: str, params: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for n in (100, 1000):
        run_id = str(uuid.uuid4())
        subprocess.run(
            [sys.executable, "-m", "benchmarks.child", "crash", "dbos", url, str(n), run_id],
            check=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        # Launching recovers the dead executor's workflow on DBOS's own path; what counts is
        # the time inside the resumed workflow (its per-step reads of recorded outputs).
        _inside.clear()
        if n == 100:
            _launch(url)
        else:
            DBOS._recover_pending_workflows(["local"])
        DBOS.retrieve_workflow(run_id).get_result()
        out[f"replay_per_step_n{n}"] = (_inside["end"] - _inside["start"]) / n * 1e6

    steps(50)  # warm up
    for n in (100, 1000):
        start = time.perf_counter()
        with SetWorkflowID(str(uuid.uuid4())):
            steps(n)
        out[f"step_first_exec_n{n}"] = (time.perf_counter() - start) / n * 1e6

    count = 1000
    start = time.perf_counter()
    for _ in range(count):
        empty()  # a new workflow, its id left to DBOS (as Tidebase's: no run_id given)
    out["workflow_empty"] = (time.perf_counter() - start) / count * 1e6

    writers, each = 8, 250
    threads = [threading.Thread(target=set_events, args=(w, each)) for w in range(writers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out["event_append_8_writers"] = writers * each / (time.perf_counter() - start)

    out.update(asyncio.run(_concurrency()))
    DBOS.destroy()
    return out


async def _concurrency() -> dict[str, float]:
    out: dict[str, float] = {}
    await ten()
    for width in (1, 4, 16, 64):
        total = max(32, 4 * width)
        gate = asyncio.Semaphore(width)

        async def one(gate: asyncio.Semaphore = gate) -> None:
            async with gate:
                with SetWorkflowID(str(uuid.uuid4())):
                    await ten()

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(total)))
        out[f"throughput_c{width}"] = total * 10 / (time.perf_counter() - start)
    return out
