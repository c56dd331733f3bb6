"""A bounded load on ``tidebase serve`` over loopback: ``workers`` protocol workers drive runs
(create → runs/begin → steps/begin + steps/complete per step → complete) while ``subscribers``
SSE clients each watch the runs of one worker from ``after=0`` (backlog, then live) until the
stream ends at the run's terminal event.

Every subscriber must see each run's log exactly as it is stored (read once more after the
run completed): ids 1..n with no gap and no repeat, ending with ``run.completed``. Latencies
of steps/begin and steps/complete are measured at the client (the round trip, as a worker sees
it). A request whose connection the server closed before answering (an HTTP/1.1 keep-alive
race) is sent once more and counted; a step begun twice that way shows in the run's log, which
the subscribers are checked against. A stream cut that way is resumed with ``Last-Event-ID``,
as an EventSource does.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["LoadReport", "drive_load", "percentile"]

_RESENT = (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)

STEPS_PER_RUN = 3
EVENTS_PER_RUN = 3 + 2 * STEPS_PER_RUN  # created, started, (step started, completed)×n, done


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by the nearest-rank method."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class LoadReport:
    subscribers: int
    workers: int
    seconds: float
    runs: int = 0
    streams: int = 0
    events: int = 0
    live_streams: int = 0
    """Streams opened before their run completed (backlog, then live events)."""
    completed_at: dict[str, float] = field(default_factory=dict)
    opened_at: list[tuple[str, float]] = field(default_factory=list)
    logs: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    """Each run's log as stored, read after it completed."""
    seen: list[tuple[str, list[tuple[int, str]]]] = field(default_factory=list)
    resent: int = 0
    loop_lag_ms: list[float] = field(default_factory=list)
    """How late the load generator's own event loop ran a 50 ms timer (its saturation)."""
    problems: list[str] = field(default_factory=list)
    begin_ms: list[float] = field(default_factory=list)
    complete_ms: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def summary(self) -> str:
        def figures(values: list[float]) -> str:
            return (
                f"p50 {percentile(values, 50):.1f} ms, p99 {percentile(values, 99):.1f} ms, "
                f"mean {statistics.fmean(values) if values else float('nan'):.1f} ms "
                f"(n={len(values)})"
            )

        return (
            f"{self.subscribers} SSE subscribers, {self.workers} workers, {self.seconds:.0f} s "
            f"(drained in {self.elapsed:.1f} s): {self.runs} runs "
            f"({self.runs / self.seconds:.1f}/s), {self.streams} streams read, "
            f"{self.live_streams} of them opened while their run was live, "
            f"{self.events} events delivered, "
            f"{len(self.problems)} lost/duplicated, {self.resent} requests resent\n"
            f"  steps/begin    {figures(self.begin_ms)}\n"
            f"  steps/complete {figures(self.complete_ms)}\n"
            f"  load generator's loop lag: {figures(self.loop_lag_ms)}"
        )


async def _post(
    client: httpx.AsyncClient, report: LoadReport, url: str, **kwargs: Any
) -> httpx.Response:
    try:
        return await client.post(url, **kwargs)
    except _RESENT:
        report.resent += 1
        return await client.post(url, **kwargs)


async def _worker(
    client: httpx.AsyncClient,
    index: int,
    until: float,
    inboxes: list[asyncio.Queue[str | None]],
    report: LoadReport,
) -> None:
    owner = f"load-worker-{index}"
    while time.monotonic() < until:
        res = await _post(client, report, "/runs/load-wf", json={"input": {"worker": index}})
        res.raise_for_status()
        run_id: str = res.json()["run"]["id"]
        for inbox in inboxes:
            inbox.put_nowait(run_id)
        begun = await _post(
            client, report, f"/runs/{run_id}/begin", headers={"x-tidebase-worker": owner}
        )
        begun.raise_for_status()
        for k in range(STEPS_PER_RUN):
            t0 = time.perf_counter()
            res = await _post(
                client,
                report,
                f"/runs/{run_id}/steps/begin",
                json={
                    "name": f"s{k}",
                    "inputHash": f"h{k}",
                    "input": {"k": k},
                    "leaseOwner": owner,
                },
            )
            report.begin_ms.append((time.perf_counter() - t0) * 1000)
            res.raise_for_status()
            answer = res.json()
            if answer["action"] != "execute":
                report.problems.append(f"{run_id}: step s{k} answered {answer['action']}")
                break
            t0 = time.perf_counter()
            resent = report.resent
            res = await _post(
                client,
                report,
                f"/runs/{run_id}/steps/{answer['step']['id']}/complete",
                json={"leaseOwner": owner, "output": {"k": k}},
            )
            report.complete_ms.append((time.perf_counter() - t0) * 1000)
            if not (res.status_code == 409 and report.resent > resent):  # the first one won
                res.raise_for_status()
        res = await _post(client, report, f"/runs/{run_id}/complete", json={"result": index})
        res.raise_for_status()
        detail = await client.get(f"/runs/{run_id}")
        detail.raise_for_status()
        report.logs[run_id] = [(e["seq"], e["type"]) for e in detail.json()["events"]]
        report.completed_at[run_id] = time.monotonic()
        report.runs += 1


async def _subscriber(
    client: httpx.AsyncClient, inbox: asyncio.Queue[str | None], report: LoadReport
) -> None:
    while (run_id := await inbox.get()) is not None:
        ids: list[int] = []
        types: list[str] = []
        report.opened_at.append((run_id, time.monotonic()))
        ended = False
        while not ended:
            # Resumed like an EventSource: Last-Event-ID is the last id this subscriber saw.
            headers = {"last-event-id": str(ids[-1])} if ids else {}
            try:
                async with client.stream(
                    "GET", f"/runs/{run_id}/events", params={"after": 0}, headers=headers
                ) as res:
                    res.raise_for_status()
                    async for line in res.aiter_lines():
                        if line.startswith("id:"):
                            ids.append(int(line[3:].strip()))
                        elif line.startswith("data:"):
                            types.append(json.loads(line[5:].strip())["type"])
                ended = True
            except _RESENT:
                report.resent += 1
        report.streams += 1
        report.events += len(ids)
        report.seen.append((run_id, list(zip(ids, types, strict=False))))
        if ids != list(range(1, len(ids) + 1)) or types[-1:] != ["run.completed"]:
            report.problems.append(f"{run_id}: ids {ids} types {types}")


async def _lag(report: LoadReport, stop: asyncio.Event) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        await asyncio.sleep(0.05)
        report.loop_lag_ms.append((time.perf_counter() - t0 - 0.05) * 1000)


async def drive_load(url: str, *, subscribers: int, workers: int, seconds: float) -> LoadReport:
    """Drive the server at ``url`` for ``seconds``, then drain every stream."""
    report = LoadReport(subscribers=subscribers, workers=workers, seconds=seconds)
    # Idle connections are dropped before the server's keep-alive (5 s) would close them.
    limits = httpx.Limits(
        max_connections=subscribers + workers + 8,
        max_keepalive_connections=subscribers + workers,
        keepalive_expiry=2.0,
    )
    timeout = httpx.Timeout(60.0, read=120.0)
    inboxes: list[asyncio.Queue[str | None]] = [asyncio.Queue() for _ in range(subscribers)]
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        stop = asyncio.Event()
        lag = asyncio.create_task(_lag(report, stop))
        readers = [asyncio.create_task(_subscriber(client, q, report)) for q in inboxes]
        until = started + seconds
        await asyncio.gather(
            *(
                _worker(client, w, until, inboxes[w::workers], report)  # subscriber s: worker s%W
                for w in range(workers)
            )
        )
        for inbox in inboxes:
            inbox.put_nowait(None)
        await asyncio.gather(*readers)
        stop.set()
        await lag
    report.elapsed = time.monotonic() - started
    for run_id, seen in report.seen:
        if seen != report.logs.get(run_id):
            report.problems.append(f"{run_id}: saw {seen}, stored {report.logs.get(run_id)}")
    report.live_streams = sum(
        opened < report.completed_at.get(run_id, float("inf"))
        for run_id, opened in report.opened_at
    )
    return report
