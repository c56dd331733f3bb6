"""Guarantee 5: the per-run event log is gap-free and strictly ordered under concurrent writers;
subscribers see every event once, live."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import pytest

from tidebase import Event, RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import InvalidName, RunNotFound


def test_eight_writers_and_the_worker_share_one_gap_free_ordered_log(tide: Tidebase) -> None:
    started = threading.Event()
    first_append = threading.Event()
    appended: dict[int, list[int]] = {}
    subscribed: list[Event] = []

    def wf(run: RunContext, input: None) -> str:
        started.set()
        for i in range(40):  # the worker's own entries: checkpoints, emits, state updates
            run.step("work", lambda i=i: i)
            run.events.emit("agent.thought", {"i": i})
            run.state.patch({"i": i})
        writers_done.wait(60)
        return "done"

    def writer(w: int) -> None:
        started.wait(30)
        seqs = appended[w] = []
        for i in range(250):
            seqs.append(tide.events.append("log", "ui.note", {"w": w, "i": i}))
            first_append.set()

    def subscriber() -> None:
        first_append.wait(30)  # join midway, after some events exist
        subscribed.extend(tide.runs.subscribe("log"))

    writers_done = threading.Event()
    worker = threading.Thread(target=lambda: tide.run("wf", wf, run_id="log"))
    writers = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    reader = threading.Thread(target=subscriber)
    worker.start()
    for t in writers:
        t.start()
    reader.start()
    for t in writers:
        t.join(120)
    writers_done.set()
    worker.join(120)
    reader.join(120)

    log = tide.runs.events("log", limit=100_000)
    seqs = [e.seq for e in log]
    assert seqs == list(range(1, len(log) + 1))  # gap-free, no duplicates
    assert len(log) == 8 * 250 + 40 * 3 + 2  # + run.started, run.completed
    for seqs_of_writer in appended.values():  # each writer's appends in its commit order
        assert seqs_of_writer == sorted(seqs_of_writer) and len(seqs_of_writer) == 250
    assert Counter(e.type for e in log) == {
        "ui.note": 2000,
        "step.completed": 40,
        "agent.thought": 40,
        "state.updated": 40,
        "run.started": 1,
        "run.completed": 1,
    }
    # the subscriber that joined midway saw every event exactly once, in order
    assert [e.seq for e in subscribed] == seqs
    assert subscribed[-1].type == "run.completed"


def test_events_emitted_in_the_workflow_body_are_not_repeated_on_replay(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> str:
        run.events.emit("progress", {"at": "start"})
        run.step("a", lambda: 1)
        run.events.emit("progress", {"at": "after a"})
        if run.attempt == 1:
            raise RuntimeError("crash")
        run.events.emit("progress", {"at": "end"})
        return "ok"

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="em")
    tide.run("wf", wf, run_id="em")
    progress = [e.payload["at"] for e in tide.runs.events("em") if e.type == "progress"]
    assert progress == ["start", "after a", "end"]


def test_event_types_and_unknown_runs(tide: Tidebase) -> None:
    tide.run("wf", lambda run, input: None, run_id="t")
    assert tide.events.append("t", "ui.click", {"x": 1}) == 3
    with pytest.raises(InvalidName, match="namespace Tidebase writes itself"):
        tide.events.append("t", "run.completed")
    with pytest.raises(InvalidName, match="empty"):
        tide.events.append("t", "")
    with pytest.raises(RunNotFound):
        tide.events.append("missing", "ui.click")
    with pytest.raises(RunNotFound):
        list(tide.runs.subscribe("missing"))
    assert [e.type for e in tide.runs.events("t")] == ["run.started", "run.completed", "ui.click"]


def test_subscribe_from_a_seq_and_stop_at_the_end(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> None:
        for i in range(3):
            run.step("s", lambda i=i: i)

    tide.run("wf", wf, run_id="sub")
    assert [e.seq for e in tide.runs.subscribe("sub", after_seq=2)] == [3, 4, 5]


async def test_async_subscribe_is_live(atide: AsyncTidebase) -> None:
    running = asyncio.Event()
    go = asyncio.Event()
    release = asyncio.Event()

    async def wf(run: AsyncRunContext, input: None) -> str:
        running.set()
        await go.wait()
        await run.step("one", lambda: 1)
        await release.wait()
        await run.events.emit("agent.done", {"ok": True})
        return "ok"

    task = asyncio.create_task(atide.run("wf", wf, run_id="live"))
    await asyncio.wait_for(running.wait(), 30)
    seen: list[str] = []

    async def follow() -> None:
        async for event in atide.runs.subscribe("live"):
            seen.append(event.type)
            if event.type == "run.started":
                go.set()
            if event.type == "step.completed":
                release.set()  # the run continues only after we saw its first step, live

    await asyncio.wait_for(asyncio.gather(follow(), task), 30)
    assert seen == ["run.started", "step.completed", "agent.done", "run.completed"]
