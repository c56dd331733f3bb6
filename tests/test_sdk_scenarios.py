"""The official SDK's own integration scenarios (sdk-python/tests/test_integration.py of
tidebase 0.7.0) for queues, schedules, sessions and non-blocking gates, rewritten against this
in-process API: same calls and invariants, models instead of dicts, no server."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

import pytest

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncTidebase
from tidebase.errors import TidebaseError


@pytest.fixture
def queue() -> str:
    return "py-" + uuid.uuid4().hex[-8:]


def test_enqueue_work_executes_registered_workflow(tide: Tidebase, queue: str) -> None:
    @tide.workflow("py-queued-wf")
    def wf(run: RunContext, input: dict[str, int]) -> int:
        return run.step("double", lambda: input["n"] * 2)

    enq = tide.enqueue("py-queued-wf", queue=queue, input={"n": 21})
    assert enq.run.status == "queued"
    done = {"stop": False}
    worker = threading.Thread(
        target=lambda: tide.work([queue], poll_s=0.05, stop=lambda: done["stop"])
    )
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while tide.runs.get(enq.run.run_id).status != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        done["stop"] = True
        worker.join(timeout=30)
    detail = tide.runs.get(enq.run.run_id)
    assert (detail.status, detail.result) == ("completed", 42)


def test_dedupe_and_cancel(tide: Tidebase, queue: str) -> None:
    a = tide.enqueue("py-dedupe-wf", queue=queue, dedupe_key="only-one")
    b = tide.enqueue("py-dedupe-wf", queue=queue, dedupe_key="only-one")
    assert a.run.run_id == b.run.run_id and b.deduplicated
    cancelled = tide.runs.cancel(a.run.run_id, reason="not needed", actor="pytest")
    assert cancelled.status == "cancelled"
    assert [e.payload for e in tide.runs.events(a.run.run_id) if e.type == "run.cancelled"] == [
        {"reason": "not needed", "actor": "pytest"}
    ]
    assert tide.runs.cancel(a.run.run_id).status == "cancelled"  # idempotent


def test_schedule_round_trip(tide: Tidebase, queue: str) -> None:
    name = "py-sched-" + uuid.uuid4().hex[-8:]
    schedule = tide.schedules.set(name, cron="0 9 * * *", workflow_name="py-digest", queue=queue)
    assert schedule.cron == "0 9 * * *" and schedule.next_fire_at is not None
    assert name in [s.name for s in tide.schedules.list()]
    tide.schedules.delete(name)
    assert name not in [s.name for s in tide.schedules.list()]


async def test_async_workflow_with_async_steps(atide: AsyncTidebase) -> None:
    calls = {"n": 0}

    async def slow_double(x: int) -> int:
        await asyncio.sleep(0.01)
        calls["n"] += 1
        return x * 2

    @atide.workflow("py-async-wf")
    async def wf(run: Any, input: dict[str, int]) -> int:
        a = await run.step("sync-step", lambda: input["n"] + 1)
        b = await run.step("async-step", lambda: slow_double(a))
        await run.state_set({"status": "done", "b": b})
        return b

    assert await atide.run("py-async-wf", input={"n": 20}, run_id="py-async-1") == 42
    assert calls["n"] == 1
    # resume replays both steps without re-executing the async one
    assert await atide.run("py-async-wf", run_id="py-async-1") == 42
    assert calls["n"] == 1


async def test_async_enqueue_and_work(atide: AsyncTidebase, queue: str) -> None:
    @atide.workflow("py-async-queued")
    async def wf(run: Any, input: dict[str, int]) -> int:
        return await run.step("triple", lambda: input["n"] * 3)

    enq = await atide.enqueue("py-async-queued", queue=queue, input={"n": 14})
    stop = asyncio.Event()
    worker = asyncio.create_task(atide.work([queue], concurrency=2, stop=stop, poll_s=0.02))
    try:
        for _ in range(1500):
            if (await atide.runs.get(enq.run.run_id)).status == "completed":
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 30)
    assert (await atide.runs.get(enq.run.run_id)).result == 42


def test_session_attach_step_replay_complete(tide: Tidebase) -> None:
    calls = {"n": 0}

    def work() -> str:
        calls["n"] += 1
        return "tool-result"

    session = tide.runs.attach("py-session", input={"kind": "test"})
    first = session.step("call:abc123", work, input={"q": 1})
    session.close()
    second = tide.runs.attach("py-session", run_id=session.run_id)
    again = second.step("call:abc123", work, input={"q": 1})
    second.close()
    assert (first, again) == ("tool-result", "tool-result")
    assert calls["n"] == 1, "checkpointed step re-executed in session"
    resumed = tide.runs.attach("py-session", run_id=session.run_id, heartbeat_s=None)
    resumed.complete({"calls": 1})
    with pytest.raises(TidebaseError):
        tide.runs.attach("py-session", run_id=session.run_id)


async def test_async_session_attach(atide: AsyncTidebase) -> None:
    async with await atide.runs.attach("py-async-session") as session:
        assert await session.step("s", lambda: 5) == 5
        await session.complete("ok")
    assert (await atide.runs.get(session.run_id)).result == "ok"


def test_session_heartbeat_fenced_after_terminal(tide: Tidebase) -> None:
    session = tide.runs.attach("py-session-hb", heartbeat_s=None)
    session.heartbeat()
    session.complete(None)
    with pytest.raises(TidebaseError):
        session.heartbeat()


def test_nonblocking_gates_rejoin_returns_decision(tide: Tidebase) -> None:
    session = tide.runs.attach("py-session-gate", heartbeat_s=None)
    gate = session.gates.begin("approve:xyz", "Approve?", data={"x": 1})
    assert gate.status == "pending"
    [raw] = tide.gates.list(run_id=session.run_id)
    tide.gates.resolve(session.run_id, raw.name, "approved", actor="pytest", token=raw.token)
    rejoined = session.gates.begin("approve:xyz", "Approve?", data={"x": 1})
    assert rejoined.status == "approved"
    assert session.gates.get(rejoined.name).status == "approved"
    session.complete(None)
