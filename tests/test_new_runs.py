"""A new run (``tide.run`` with no ``run_id``) is claimed at its first durable operation, and
always before that operation takes effect; a run that makes none is written in one statement
and reads exactly as if it had been claimed first (DESIGN §6; the sync engine).

With a ``run_id`` given the claim stays the first statement: the run may exist, be completed
or be held by another worker, which must be known before its body runs.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tidebase import Budget, RunContext, Tidebase
from tidebase import current_run as tide_current_run
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import GatePending, InputMismatch
from tidebase_core import plugin
from tidebase_core._sync.store import StoreConnection
from tidebase_core.owner import Owner
from tidebase_core.store.records import ClaimRequest

from .conftest import executions
from .test_resilience import cut_while_it_waits


def _ids(seen: list[str]) -> Callable[[RunContext, Any], Any]:
    def wf(run: RunContext, input: Any) -> Any:
        seen.append(run.run_id)
        return {"echo": input}

    return wf


def _as_any_run(info: Any) -> Any:
    """The run as stored, its own id (also in its budget fields) and timestamps left out."""
    fields = {k: v for k, v in info.model_dump(mode="json").items() if not k.endswith("_at")}
    return json.loads(json.dumps(fields).replace(info.run_id, "<its id>"))


def test_a_run_written_in_one_statement_reads_like_one_claimed_then_completed(
    tide: Tidebase,
) -> None:
    seen: list[str] = []
    wf = _ids(seen)
    options: dict[str, Any] = {"input": {"a": 1}, "metadata": {"m": 1}, "budget": Budget(usd=5)}
    tide.run("wf", wf, **options)
    tide.run("wf", wf, run_id="claimed", **options)
    new, claimed = seen
    assert _as_any_run(tide.runs.get(new)) == _as_any_run(tide.runs.get("claimed"))
    entries = [[(e.seq, e.type, e.payload) for e in tide.runs.events(r)] for r in seen]
    logged = [(1, "run.started", {"attempt": 1}), (2, "run.completed", {"attempt": 1})]
    assert entries == [logged, logged]
    # Resumed by id like any run: its stored result, its input hash checked.
    assert tide.run("wf", wf, run_id=new, input={"a": 1}) == {"echo": {"a": 1}}
    assert seen == [new, claimed]
    with pytest.raises(InputMismatch):
        tide.run("wf", wf, run_id=new, input={"a": 2})


def test_every_reader_of_the_log_sees_the_entries_a_one_statement_run_holds_in_its_row(
    tide: Tidebase,
) -> None:
    """Its run.started and run.completed live in the run row (one row where a claimed run has
    three): the listing, a subscription, the attempt outcomes and the next entry's seq all
    read them as entries of the log."""
    seen: list[str] = []
    tide.run("wf", _ids(seen))
    (run_id,) = seen
    with tide._store.connection() as db:
        outcomes = db.attempt_outcomes(run_id, include_children=False)
    assert outcomes == {(run_id, 1): "completed"}
    assert [(e.seq, e.type) for e in tide.runs.subscribe(run_id)] == [
        (1, "run.started"),
        (2, "run.completed"),
    ]
    assert tide.events.append(run_id, "note", {"n": 1}) == 3
    assert [(e.seq, e.type) for e in tide.runs.events(run_id, after_seq=1)] == [
        (2, "run.completed"),
        (3, "note"),
    ]
    started, completed, _ = tide.runs.events(run_id)
    assert started.created_at == completed.created_at == tide.runs.get(run_id).created_at


def _status_from_outside(tide: Tidebase, run_id: str) -> str:
    return tide.runs.get(run_id).status  # another pooled connection than the run's


def _first_operation(
    kind: str, tide: Tidebase, seen: list[str]
) -> Callable[[RunContext, Any], str]:
    def wf(run: RunContext, input: Any) -> str:
        if kind == "step":
            run.step("s", lambda: seen.append(_status_from_outside(tide, run.run_id)))
        elif kind == "state":
            run.state.set({"x": 1})
        elif kind == "event":
            run.events.emit("note", {"n": 1})
        elif kind == "usage":
            run.usage.record(provider="openai", model="gpt-4o", input_tokens=10, output_tokens=5)
        elif kind == "child":
            run.child("kid", lambda kid, _: seen.append(_status_from_outside(tide, run.run_id)))
        elif kind == "gate":
            run.gate("approve", "ok?", wait=False)
        if kind not in ("step", "child"):
            seen.append(_status_from_outside(tide, run.run_id))
        seen.append(run.run_id)
        return "done"

    return wf


@pytest.mark.parametrize("kind", ["step", "state", "event", "usage", "child", "gate"])
def test_a_new_run_is_recorded_before_its_first_operation_takes_effect(
    tide: Tidebase, kind: str
) -> None:
    seen: list[str] = []
    wf = _first_operation(kind, tide, seen)
    if kind == "gate":
        with pytest.raises(GatePending):
            tide.run("wf", wf)
        run_id = tide.runs.list(workflow="wf")[0].run_id
        assert tide.runs.get(run_id).status == "waiting"
    else:
        assert tide.run("wf", wf) == "done"
        status, run_id = seen
        assert status == "running"
    entries = tide.runs.events(run_id)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    assert [e.type for e in entries].count("run.started") == 1
    assert entries[0].type == "run.started"


CALL = plugin.Operation("llm")


def _plugin_first(kind: str, tide: Tidebase, seen: list[str]) -> Callable[[RunContext, None], Any]:
    """A framework's model call (or stream) made durable by its plugin, as the first operation:
    its body looks the run up from outside."""

    def look() -> str:
        run = tide_current_run()
        assert run is not None
        seen.append(_status_from_outside(tide, run.run_id))
        return "answer"

    async def alook() -> str:
        return look()

    def words() -> Iterator[str]:
        yield look()

    async def awords() -> AsyncIterator[str]:
        yield look()

    digest = plugin.input_hash("prompt")
    streamed: dict[str, Any] = {"digest": digest, "result_of": lambda e: e, "replay": lambda t: [t]}

    async def astream() -> list[str]:
        return [w async for w in plugin.durable_stream(CALL, awords, **streamed)]

    def wf(run: RunContext, input: None) -> Any:
        if kind == "call":
            return plugin.durable_call_sync(CALL, look, digest=digest)
        if kind == "async call":  # an async framework driven from a sync workflow
            return asyncio.run(plugin.durable_call(CALL, alook, digest=digest))
        if kind == "stream":
            return list(plugin.durable_stream_sync(CALL, words, **streamed))
        return asyncio.run(astream())

    return wf


@pytest.mark.parametrize("kind", ["call", "async call", "stream", "async stream"])
def test_a_plugins_first_call_in_a_new_run_starts_after_the_run_is_recorded(
    tide: Tidebase, kind: str
) -> None:
    seen: list[str] = []
    tide.run("wf", _plugin_first(kind, tide, seen))
    assert seen == ["running"]


def test_branches_racing_to_a_new_runs_first_step_claim_it_once(tide: Tidebase) -> None:
    n = 6
    barrier = threading.Barrier(n)
    seen: list[str] = []

    def wf(run: RunContext, input: None) -> list[int]:
        seen.append(run.run_id)

        def branch(i: int) -> int:
            barrier.wait(10)  # all six ask for the claim at once
            return int(run.step(f"s{i}", lambda: i))

        with ThreadPoolExecutor(max_workers=n) as pool:
            return list(pool.map(branch, range(n)))

    assert tide.run("wf", wf) == list(range(n))
    entries = tide.runs.events(seen[0])
    assert [e.type for e in entries].count("run.started") == 1
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    steps = tide.runs.steps(seen[0])
    assert len(steps) == n and {s.status for s in steps} == {"completed"}


def test_a_new_run_that_fails_before_any_operation_is_recorded_failed(tide: Tidebase) -> None:
    seen: list[str] = []

    def wf(run: RunContext, input: None) -> None:
        seen.append(run.run_id)
        raise ValueError("no input to work on")

    with pytest.raises(ValueError):
        tide.run("wf", wf)
    run = tide.runs.get(seen[0])
    assert run.status == "failed" and "no input to work on" in json.dumps(run.error)
    assert [e.type for e in tide.runs.events(seen[0])] == ["run.started", "run.failed"]


@pytest.mark.slow
def test_a_new_run_killed_in_its_first_step_was_recorded_and_resumes(
    spawn, tide: Tidebase, tmp_path: Path
) -> None:
    """SIGKILL inside the first step body of a run started without an id: the claim was
    committed before the body began, so the run is there to resume."""
    log = tmp_path / "executions.log"
    crashed = spawn("-", log, BLOCK_AT="step1")
    run_id = crashed.expect("IN step1").split()[2]
    crashed.kill()
    run = tide.runs.get(run_id)
    assert run.status == "running" and run.attempt == 1
    assert executions(log) == {"step1": 1}
    resumed = spawn(run_id, log)
    assert json.loads(resumed.finish().removeprefix("RESULT ")) == [
        f"step{i} done" for i in range(1, 5)
    ]
    assert executions(log) == {"step1": 2, "step2": 1, "step3": 1, "step4": 1}


def test_a_one_statement_run_cut_off_in_flight_is_written_once(
    tide: Tidebase, tidebase_database_url: str, tidebase_schema: str
) -> None:
    """The connection breaks while the statement waits on a lock; its backend lives on and
    commits later. The retry waits behind it, writes nothing, and finds the first one's row
    (its id and this process as its owner): one run, two log entries, and no error."""
    tide.open()
    locker = psycopg.connect(tidebase_database_url)
    locker.execute(
        sql.SQL("LOCK TABLE {}.runs IN SHARE MODE").format(sql.Identifier(tidebase_schema))
    )
    owner = Owner.new()
    outcome: list[Any] = []
    with tide._store.connection() as db:
        fd = db._conn.fileno()
        db.defer_claim(
            ClaimRequest("cut", "wf", "1", "h", True, None, owner, lease=60),
            then=lambda: outcome.append("claimed apart"),
        )

        def complete() -> None:
            try:
                outcome.append(
                    db.complete_run(
                        run_id="cut",
                        token=owner.token,
                        attempt=1,
                        result="2",
                        result_type=None,
                        payload='{"attempt": 1}',
                    )
                )
            except BaseException as exc:
                outcome.append(exc)

        writer = threading.Thread(target=complete)
        writer.start()
        cut_while_it_waits(tidebase_database_url, fd, locker, what="the statement waits")
        writer.join(30)
        assert not writer.is_alive()
        assert not db.claim_deferred
    assert outcome == [True]
    assert tide.runs.get("cut").status == "completed"
    assert [(e.seq, e.type) for e in tide.runs.events("cut")] == [
        (1, "run.started"),
        (2, "run.completed"),
    ]


def test_a_deferred_claim_precedes_every_statement_of_its_connection(
    tide: Tidebase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever statement comes first on the run's connection (here a state read), the claim
    goes out before it."""
    sent: list[str] = []
    original = StoreConnection._send

    def counting(self: StoreConnection, query: str, params: Any) -> Any:
        sent.append(query)
        return original(self, query, params)

    monkeypatch.setattr(StoreConnection, "_send", counting)
    q = tide.open()._store.q

    def wf(run: RunContext, input: None) -> Any:
        return run.state.get()

    tide.run("wf", wf)
    mine = [s for s in sent if s in (q.claim_run, q.get_state, q.complete_run)]
    assert mine == [q.claim_run, q.get_state, q.complete_run]


def test_the_heartbeat_renews_a_new_run_only_once_it_is_claimed(tide: Tidebase) -> None:
    tracked: list[bool] = []

    def wf(run: RunContext, input: None) -> None:
        tracked.append(run._execution.token in tide._heartbeat._executions)
        run.step("s", lambda: tracked.append(run._execution.token in tide._heartbeat._executions))

    tide.run("wf", wf)
    assert tracked == [False, True]


async def test_an_async_new_run_is_claimed_before_its_body(atide: AsyncTidebase) -> None:
    """Not deferred in the async API: a sync callback there writes through a connection of its
    own, which could not wait for a claim the event loop has yet to send."""
    seen: list[str] = []

    async def wf(run: AsyncRunContext, input: None) -> None:
        seen.append((await atide.runs.get(run.run_id)).status)

    await atide.run("wf", wf)
    assert seen == ["running"]
