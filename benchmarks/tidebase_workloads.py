"""Tidebase's side of every figure (runs in a child process of its own)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from typing import Any

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase_core._sync.store import StoreConnection

POOL = 16  # connections; the concurrency figure grows up to this


def noop() -> None:
    return None


def steps(run: RunContext, n: int) -> int:
    for _ in range(n):
        run.step("noop", noop)
    return n


def crash_after_steps(run: RunContext, n: int) -> int:
    steps(run, n)
    if os.environ.get("BENCH_CRASH") == "1":
        os._exit(0)  # the process dies right after its N-th checkpoint
    return n


def crash(url: str, n: int, run_id: str) -> None:
    """Grandchild: execute N steps of ``run_id`` and die."""
    os.environ["BENCH_CRASH"] = "1"
    tide = Tidebase(url, max_connections=2)
    tide.run("replay", crash_after_steps, run_id=run_id, input=n)


def run(url: str, params: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    tide = Tidebase(url, max_connections=POOL).open()
    tide.run("warmup", steps, run_id=str(uuid.uuid4()), input=50)

    for n in (100, 1000):
        start = time.perf_counter()
        tide.run("steps", steps, run_id=str(uuid.uuid4()), input=n)
        out[f"step_first_exec_n{n}"] = (time.perf_counter() - start) / n * 1e6

    for n in (100, 1000):
        run_id = str(uuid.uuid4())
        subprocess.run(
            [sys.executable, "-m", "benchmarks.child", "crash", "tidebase", url, str(n), run_id],
            check=True,
            env={**os.environ, "PYTHONPATH": os.getcwd()},
        )
        # The whole resumed call: claim, one query loading N checkpoints, N replays, completion.
        start = time.perf_counter()
        tide.run("replay", crash_after_steps, run_id=run_id, input=n)
        out[f"replay_per_step_n{n}"] = (time.perf_counter() - start) / n * 1e6

    count = 1000
    start = time.perf_counter()
    for _ in range(count):
        tide.run("empty", lambda run, input: None)  # a new run, as DBOS's: no id given
    out["workflow_empty"] = (time.perf_counter() - start) / count * 1e6

    out.update(_round_trips(tide))
    out.update(_appenders(tide))
    tide.close()
    out.update(asyncio.run(_concurrency(url)))
    return out


def _round_trips(tide: Tidebase) -> dict[str, float]:
    """Statements sent, counted where every statement goes (StoreConnection._send)."""
    sent: list[str] = []
    original = StoreConnection._send

    def counting(self: StoreConnection, query: str, params: Any) -> Any:
        sent.append(query)
        return original(self, query, params)

    def failing(run: RunContext, n: int) -> int:
        steps(run, n)
        if run.attempt == 1:
            raise RuntimeError("fail once, to be replayed")
        return n

    tide._heartbeat.stop()  # lease renewals are not the workload's statements
    StoreConnection._send = counting  # type: ignore[method-assign]
    try:
        run_id = str(uuid.uuid4())
        with contextlib.suppress(RuntimeError):
            tide.run("trips", failing, run_id=run_id, input=1000)
        first = len(sent) - 2  # minus the claim and the failure record
        sent.clear()
        tide.run("trips", failing, run_id=run_id, input=1000)
        replay = len(sent) - 1  # minus the completion
    finally:
        StoreConnection._send = original  # type: ignore[method-assign]
    return {"round_trips_per_first_step": first / 1000, "round_trips_per_replayed_run": replay}


def _appenders(tide: Tidebase) -> dict[str, float]:
    writers, each = 8, 250
    target = str(uuid.uuid4())
    tide.run("target", lambda run, input: None, run_id=target)

    def burst(work: Any) -> float:
        barrier = threading.Barrier(writers)

        def writer() -> None:
            barrier.wait()
            for i in range(each):
                work(i)

        threads = [threading.Thread(target=writer) for _ in range(writers)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return writers * each / (time.perf_counter() - start)

    events = burst(lambda i: tide.events.append(target, "bench.tick", {"i": i}))
    rates: list[float] = []

    def patching(run: RunContext, input: None) -> None:
        run.state.set({})
        rates.append(burst(lambda i: run.state.patch({"i": i})))

    tide.run("patching", patching, run_id=str(uuid.uuid4()))
    return {"event_append_8_writers": events, "state_patch_8_writers": rates[0]}


async def _concurrency(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    async with AsyncTidebase(url, max_connections=POOL) as tide:

        async def ten(run: AsyncRunContext, input: None) -> None:
            for _ in range(10):
                await run.step("noop", noop)

        await tide.run("warmup", ten, run_id=str(uuid.uuid4()))
        for width in (1, 4, 16, 64):
            total = max(32, 4 * width)
            gate = asyncio.Semaphore(width)

            async def one(gate: asyncio.Semaphore = gate) -> None:
                async with gate:
                    await tide.run("ten", ten, run_id=str(uuid.uuid4()))

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(total)))
            out[f"throughput_c{width}"] = total * 10 / (time.perf_counter() - start)
    return out
