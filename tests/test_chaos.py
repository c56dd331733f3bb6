"""Guarantee 10: a Postgres restart in the middle of a workload loses nothing and duplicates
nothing; every run completes once the database is back.

A real embedded Postgres of the test's own (never the session's shared server) is stopped and
started again at random moments, by a fast stop, an immediate stop or a SIGKILL of the
postmaster, while sync runs (threads) and async runs (one event loop) write steps, live state,
events, usage and gates, gates being decided and events appended by another thread. Then:

- every run completed, in one attempt, returning its result;
- no step body executed twice (counted here, in the test process);
- each run's log is gap-free, with exactly the expected events of each type (none duplicated,
  none missing), its usage ledger and state are exact;
- no run is left running or holding a lease.

``TIDEBASE_CHAOS_RUNS`` sets the number of runs (default 120; ``nox -s chaos`` runs 1,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import GateAlreadyResolved
from tidebase_core import embedded

from .test_embedded import destroy

RUNS = int(os.environ.get("TIDEBASE_CHAOS_RUNS", "120"))
STEPS = 6
MIN_RESTARTS = 3  # the last step of every run waits for this many, so no run outpaces the chaos
SCHEMA = "chaos"

pytestmark = pytest.mark.slow


class Workload:
    """The runs, what they did (counted in this process), and the chaos applied to them."""

    def __init__(self, home: Path, url: str) -> None:
        self.home = home
        self.url = url
        self.lock = threading.Lock()
        self.executions: Counter[str] = Counter()
        self.done = threading.Event()
        self.restarts: Counter[str] = Counter()
        self.restarted_at: list[float] = []
        self.enough_chaos = threading.Event()
        self.spans: dict[str, tuple[float, float]] = {}  # run id → when it ran
        # Half the sync runs are new runs (no run_id given: their claim is deferred to their
        # first step); label → the id Tidebase gave them.
        self.ids: dict[str, str] = {}
        self.errors: list[BaseException] = []

    def executed(self, run_id: str, step: str) -> None:
        with self.lock:
            self.executions[f"{run_id}:{step}"] += 1

    # -- the chaos ------------------------------------------------------------------------------

    def chaos(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.done.wait(rng.uniform(0.7, 2.0)):  # up a while
            mode = rng.choice(["fast", "immediate", "kill"])
            if mode == "kill":
                pid = embedded.server_status(self.home).pid
                if pid is not None:
                    os.kill(pid, signal.SIGKILL)
            else:
                embedded.stop(self.home, mode=mode)  # type: ignore[arg-type]
            self.done.wait(rng.uniform(0.0, 0.6))  # then away a while
            self.restarted_at.append(time.monotonic())
            embedded.start(self.home)
            self.restarts[mode] += 1
            if sum(self.restarts.values()) >= MIN_RESTARTS:
                self.enough_chaos.set()

    # -- the other process's work: deciding gates, appending events ------------------------------

    def resolver(self, tide: Tidebase) -> None:
        decided: set[str] = set()
        while not self.done.is_set():
            try:
                pending = tide.gates.list(status="pending", limit=1000)
            except Exception as exc:  # pragma: no cover - reported by the test
                self.errors.append(exc)
                return
            for gate in pending:
                if gate.run_id in decided:
                    continue
                try:
                    tide.events.append(gate.run_id, "review.note", {"by": "resolver"})
                    tide.gates.resolve(gate.run_id, gate.name, "approved", actor="chaos")
                except GateAlreadyResolved:  # pragma: no cover - would be a duplicate decision
                    self.errors.append(AssertionError(f"gate of {gate.run_id} decided twice"))
                except Exception as exc:  # pragma: no cover - reported by the test
                    self.errors.append(exc)
                    return
                decided.add(gate.run_id)
            self.done.wait(0.05)


def sync_workflow(w: Workload) -> Any:
    def wf(run: RunContext, n: int) -> int:
        w.ids.setdefault(f"sync-{n}", run.run_id)
        total = 0
        for i in range(STEPS):

            def body(i: int = i) -> int:
                w.executed(run.run_id, f"s{i}")
                time.sleep(random.uniform(0.2, 1.0))
                if i == STEPS - 1:
                    w.enough_chaos.wait(timeout=120)
                if i == 2:
                    run.usage.record(provider="p", model="m", input_tokens=1, output_tokens=2)
                return n + i

            total += run.step(
                f"s{i}",
                body,
                input=i,
                usage=(lambda _: [{"provider": "p", "model": "m", "input_tokens": 3}])
                if i == 4
                else None,
            )
            run.state.patch({"step": i, f"k{i}": i})
            run.events.emit("progress", {"i": i})
            if i == 3:
                decision = run.gate("review", "ok?")
                assert decision.decision == "approved"
        return total

    return wf


def async_workflow(w: Workload) -> Any:
    async def wf(run: AsyncRunContext, n: int) -> int:
        total = 0
        for i in range(STEPS):

            async def body(i: int = i) -> int:
                w.executed(run.run_id, f"s{i}")
                await asyncio.sleep(random.uniform(0.2, 1.0))
                for _ in range(2400 if i == STEPS - 1 else 0):  # up to 120 s, as the sync body
                    if w.enough_chaos.is_set():
                        break
                    await asyncio.sleep(0.05)
                if i == 2:
                    await run.usage.record(provider="p", model="m", input_tokens=1, output_tokens=2)
                return n + i

            total += await run.step(
                f"s{i}",
                body,
                input=i,
                usage=(lambda _: [{"provider": "p", "model": "m", "input_tokens": 3}])
                if i == 4
                else None,
            )
            await run.state.patch({"step": i, f"k{i}": i})
            await run.events.emit("progress", {"i": i})
            if i == 3:
                decision = await run.gate("review", "ok?")
                assert decision.decision == "approved"
        return total

    return wf


EXPECTED_TYPES = {
    "run.started": 1,
    "step.completed": STEPS,
    "state.updated": STEPS,
    "progress": STEPS,
    "usage.recorded": 2,
    "gate.opened": 1,
    "review.note": 1,
    "gate.resolved": 1,
    "run.completed": 1,
}


@pytest.fixture
def chaos_home(tmp_path: Path) -> Any:
    home = tmp_path / "h"
    uri = embedded.start(home)
    # Room for every run's pooled connection plus the listeners of runs waiting at a gate.
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute(f"ALTER SYSTEM SET max_connections = {max(300, 3 * RUNS + 50)}")
    embedded.stop(home, mode="fast")
    yield home, embedded.start(home)
    destroy(home)


@pytest.mark.timeout(300 + RUNS)
def test_restarts_under_load_lose_nothing_and_duplicate_nothing(chaos_home: Any) -> None:
    home, url = chaos_home
    w = Workload(home, url)
    n_sync = RUNS // 2
    n_async = RUNS - n_sync
    concurrency = min(RUNS, 150)  # runs in flight at once (each holds a connection)
    per_client = concurrency // 2 + 2
    tide = Tidebase(url, schema=SCHEMA, max_connections=per_client, reconnect_seconds=60)
    observer = Tidebase(url, schema=SCHEMA, max_connections=2, reconnect_seconds=60)
    tide.open()
    observer.open()
    results: dict[str, Any] = {}

    def one_sync(k: int) -> None:
        run_id = f"sync-{k}"
        began = time.monotonic()
        try:
            given = None if k % 2 else run_id
            results[run_id] = tide.run("chaos-sync", sync_workflow(w), run_id=given, input=k)
        except BaseException as exc:
            results[run_id] = exc
        w.spans[run_id] = (began, time.monotonic())

    async def all_async() -> None:
        async with AsyncTidebase(
            url, schema=SCHEMA, max_connections=per_client, reconnect_seconds=60
        ) as atide:
            semaphore = asyncio.Semaphore(concurrency // 2)

            async def one(k: int) -> None:
                run_id = f"async-{k}"
                async with semaphore:
                    began = time.monotonic()
                    try:
                        results[run_id] = await atide.run(
                            "chaos-async", async_workflow(w), run_id=run_id, input=k
                        )
                    except BaseException as exc:
                        results[run_id] = exc
                    w.spans[run_id] = (began, time.monotonic())

            await asyncio.gather(*(one(k) for k in range(n_async)))

    started = time.monotonic()
    side = [
        threading.Thread(target=w.chaos, args=(RUNS,), name="chaos"),
        threading.Thread(target=w.resolver, args=(observer,), name="resolver"),
    ]
    for t in side:
        t.start()
    try:
        async_thread = threading.Thread(target=lambda: asyncio.run(all_async()), name="async")
        async_thread.start()
        with ThreadPoolExecutor(max_workers=concurrency // 2) as pool:
            list(pool.map(one_sync, range(n_sync)))
        async_thread.join(timeout=200 + RUNS)
        assert not async_thread.is_alive(), "async runs did not finish"
    finally:
        w.done.set()
        for t in side:
            t.join(timeout=120)
        with contextlib.suppress(Exception):
            embedded.start(home)  # whatever the chaos left, the checks below need the server
    duration = time.monotonic() - started
    seen = sorted(
        sum(1 for t in w.restarted_at if began <= t <= ended) for began, ended in w.spans.values()
    )
    median = seen[len(seen) // 2] if seen else 0
    print(
        f"\nchaos: {RUNS} runs ({n_sync} sync, {n_async} async), "
        f"{sum(w.restarts.values())} restarts {dict(w.restarts)}, {duration:.1f}s; "
        f"restarts during a run: min {seen[0] if seen else 0}, median {median}, "
        f"max {seen[-1] if seen else 0}"
    )

    try:
        assert not w.errors, w.errors
        failed = {k: v for k, v in results.items() if isinstance(v, BaseException)}
        assert not failed, f"{len(failed)} runs raised: {list(failed.items())[:5]}"
        assert len(results) == RUNS
        assert sum(w.restarts.values()) >= MIN_RESTARTS, (
            "the chaos must restart the database several times"
        )
        assert median >= 2, "most runs must live through several restarts"
        for run_id, value in results.items():
            k = int(run_id.split("-")[1])
            assert value == sum(k + i for i in range(STEPS)), run_id

        # No step body executed twice, none skipped.
        twice = {key: n for key, n in w.executions.items() if n != 1}
        assert not twice, f"step bodies executed more than once: {twice}"
        assert len(w.executions) == RUNS * STEPS

        for label in results:
            run_id = w.ids.get(label, label)
            run = observer.runs.get(run_id)
            assert run.status == "completed", (run_id, run.status)
            assert run.attempt == 1, (run_id, run.attempt)
            assert run.lease_expires_at is None, run_id
            events = observer.runs.events(run_id)
            assert [e.seq for e in events] == list(range(1, len(events) + 1)), run_id
            assert Counter(e.type for e in events) == EXPECTED_TYPES, run_id
            assert len(observer.usage.records(run_id)) == 2, run_id
            state = observer.runs.state(run_id)
            assert state == {"step": STEPS - 1, **{f"k{i}": i for i in range(STEPS)}}
            versions = observer.runs.state_versions(run_id)
            assert [v.version for v in versions] == list(range(1, STEPS + 1)), run_id
        assert not [g for g in observer.gates.list(status="pending")]
    finally:
        tide.close()
        observer.close()
