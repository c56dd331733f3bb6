"""Guarantee 8: child creation is idempotent by edge name, also under concurrency; a resumed
parent reuses its finished children."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase

from .conftest import executions


def test_a_child_run_is_linked_and_reused_by_edge_name(tide: Tidebase) -> None:
    ran: list[str] = []

    def researcher(run: RunContext, topic: str) -> str:
        return run.step("search", lambda: ran.append(topic) or f"notes on {topic}")

    def parent(run: RunContext, input: None) -> list[str]:
        first = run.child("research", researcher, input="tides")
        again = run.child("research", researcher, input="tides")  # same edge: same child
        if run.attempt == 1:
            raise RuntimeError("crash")
        return [first, again]

    with pytest.raises(RuntimeError):
        tide.run("parent", parent, run_id="p")
    assert tide.run("parent", parent, run_id="p") == ["notes on tides"] * 2
    assert ran == ["tides"]
    (child,) = tide.runs.children("p")
    assert (child.run_id, child.workflow_name, child.status) == (
        "p/research",
        "research",
        "completed",
    )


def test_two_workers_racing_on_one_edge_make_one_child_run(tide: Tidebase) -> None:
    ran: list[int] = []
    barrier = threading.Barrier(2)
    inside = threading.Event()

    def child(run: RunContext, input: None) -> str:
        def work() -> str:
            ran.append(1)
            inside.set()
            return "child result"

        return run.step("work", work)

    def parent(run: RunContext, input: None) -> list[str]:
        results: list[str] = []

        def racer() -> None:
            barrier.wait()
            results.append(run.child("shared", child))

        threads = [threading.Thread(target=racer) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        return results

    assert tide.run("parent", parent, run_id="race") == ["child result"] * 2
    assert ran == [1]
    assert [c.run_id for c in tide.runs.children("race")] == ["race/shared"]


@pytest.mark.slow
def test_a_parent_killed_during_fanout_resumes_without_rerunning_finished_children(
    spawn,
    tide: Tidebase,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    log = tmp_path / "executions.log"
    crashed = spawn("fan", log, SCENARIO="fanout", BLOCK_AT="c")
    crashed.expect("IN c")
    # a and b may still be running when c blocks: wait until both have finished
    deadline_children = {"fan/agents/a", "fan/agents/b"}
    for _ in range(300):
        done = {c.run_id for c in tide.runs.children("fan") if c.status == "completed"}
        if deadline_children <= done:
            break
        threading.Event().wait(0.05)
    assert deadline_children <= done
    crashed.kill()

    resumed = spawn("fan", log, SCENARIO="fanout")
    result = json.loads(resumed.finish().removeprefix("RESULT "))
    assert result == {
        "children": ["a:{'topic': 'a'}", "b:{'topic': 'b'}", "c:{'topic': 'c'}"],
        "merged": "a:{'topic': 'a'} + b:{'topic': 'b'} + c:{'topic': 'c'}",
    }
    assert executions(log) == {"a": 1, "b": 1, "c": 2, "merge": 1}
    assert [c.status for c in tide.runs.children("fan")] == ["completed"] * 3


def test_fanout_runs_children_in_parallel_and_raises_after_all_finish(tide: Tidebase) -> None:
    barrier = threading.Barrier(3, timeout=30)  # only passable if all three run at once
    ran: list[str] = []

    def child(run: RunContext, name: str) -> str:
        barrier.wait()
        ran.append(name)
        if name == "bad":
            raise ValueError("bad child")
        return name.upper()

    def parent(run: RunContext, input: None) -> list[str]:
        return run.fanout("team", [(n, child, n) for n in ("x", "bad", "y")])

    with pytest.raises(ValueError, match="bad child"):
        tide.run("parent", parent, run_id="par")
    assert sorted(ran) == ["bad", "x", "y"]
    statuses = {c.run_id: c.status for c in tide.runs.children("par")}
    assert statuses == {
        "par/team/x": "completed",
        "par/team/bad": "failed",
        "par/team/y": "completed",
    }

    with pytest.raises(ValueError, match="appears twice"):
        tide.run(
            "parent",
            lambda run, i: run.fanout("t", [("a", child, 1), ("a", child, 2)]),
            run_id="dup",
        )


async def test_async_fanout_runs_children_as_concurrent_tasks(atide: AsyncTidebase) -> None:
    arrived = 0
    all_here = asyncio.Event()

    async def child(run: AsyncRunContext, n: int) -> int:
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            all_here.set()
        await asyncio.wait_for(all_here.wait(), 10)  # passes only if the three overlap
        return await run.step("square", lambda: n * n)

    async def parent(run: AsyncRunContext, input: None) -> list[int]:
        return await run.fanout("squares", [(f"n{n}", child, n) for n in (1, 2, 3)])

    assert await atide.run("parent", parent, run_id="apar") == [1, 4, 9]
    assert len(await atide.runs.children("apar")) == 3


def test_a_child_parked_at_a_gate_parks_its_parent_until_the_decision(tide: Tidebase) -> None:
    from tidebase.errors import GatePending

    def reviewer(run: RunContext, input: None) -> str:
        decision = run.gate("sign-off", "Good to go?", wait=False)
        return f"signed off by {decision.actor}"

    def parent(run: RunContext, input: None) -> str:
        return run.child("review", reviewer)

    with pytest.raises(GatePending):
        tide.run("parent", parent, run_id="pp")
    assert tide.runs.get("pp").status == "waiting"
    assert tide.runs.get("pp").lease_expires_at is None  # the parent's worker let go too
    tide.gates.resolve("pp/review", "sign-off", "approved", actor="lead")
    assert tide.run("parent", parent, run_id="pp") == "signed off by lead"
