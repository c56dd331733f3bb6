"""Guarantees 3 and 4: one live worker per run; a worker whose lease was taken over is fenced."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tidebase import Tidebase
from tidebase.errors import RunLocked

from .conftest import executions

pytestmark = pytest.mark.slow


def test_two_processes_starting_the_same_new_run_execute_each_step_once(
    spawn, tide: Tidebase, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    a = spawn("race-1", log, READY="1", WAIT="1")
    b = spawn("race-1", log, READY="1", WAIT="1")
    a.expect("READY")
    b.expect("READY")
    a.send()
    b.send()
    results = {a.finish(), b.finish()}
    assert len(results) == 1, results  # both return the same result
    assert json.loads(results.pop().removeprefix("RESULT ")) == [
        "step1 done",
        "step2 done",
        "step3 done",
        "step4 done",
    ]
    assert executions(log) == {"step1": 1, "step2": 1, "step3": 1, "step4": 1}
    assert tide.runs.get("race-1").status == "completed"


def test_threads_racing_on_one_run_execute_each_step_once(tide: Tidebase) -> None:
    counts: dict[str, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def work(run, input):
        for i in range(5):

            def body(i=i):
                with lock:
                    counts[f"s{i}"] = counts.get(f"s{i}", 0) + 1
                return i

            run.step(f"s{i}", body)
        return "done"

    results: list[object] = []

    def racer() -> None:
        barrier.wait()
        results.append(tide.run("race", work, run_id="race-threads", wait=True))

    threads = [threading.Thread(target=racer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == ["done"] * 6
    assert counts == {f"s{i}": 1 for i in range(5)}


def test_a_live_lease_held_elsewhere_raises_run_locked(tide: Tidebase) -> None:
    inside = threading.Event()
    release = threading.Event()

    def slow(run, input):
        run.step("a", lambda: inside.set() or release.wait(30))
        return "ok"

    t = threading.Thread(target=lambda: tide.run("slow", slow, run_id="locked-1"))
    t.start()
    try:
        assert inside.wait(30)
        with pytest.raises(RunLocked, match=r"run 'locked-1' is being executed by pid \d+"):
            tide.run("slow", slow, run_id="locked-1")
    finally:
        release.set()
        t.join(30)
    assert tide.run("slow", slow, run_id="locked-1") == "ok"


def test_a_zombie_worker_is_fenced_after_a_takeover_and_changes_nothing(
    spawn, tide: Tidebase, tmp_path: Path, tidebase_env: dict[str, str]
) -> None:
    log = tmp_path / "executions.log"
    zombie = spawn("zombie-1", log, BLOCK_AT="step2", TIDEBASE_LEASE_SECONDS="1")
    zombie.expect("IN step2")
    os.kill(zombie.proc.pid, signal.SIGSTOP)
    try:
        # Wait (on the database's clock) until the stopped worker's lease has lapsed.
        deadline = time.monotonic() + 30
        while True:
            run = tide.runs.get("zombie-1")
            with psycopg.connect(tidebase_env["TIDEBASE_DATABASE_URL"]) as conn:
                (expired,) = conn.execute("SELECT %s < now()", (run.lease_expires_at,)).fetchone()  # type: ignore[misc]
            if expired:
                break
            assert time.monotonic() < deadline, "the stopped worker's lease never expired"
            time.sleep(0.1)

        # A second worker takes the run over and is inside step3 (the run is 'running' again).
        taker = spawn("zombie-1", log, BLOCK_AT="step3")
        taker.expect("IN step3")
        before = _snapshot(tidebase_env, tide.settings.schema, "zombie-1")
        assert before["run"][:2] == ["running", 2]
    finally:
        os.kill(zombie.proc.pid, signal.SIGCONT)

    zombie.send()  # its step2 body now finishes; its checkpoint must be refused
    line = zombie.finish()
    assert line.startswith("ERROR LeaseLost"), line
    assert _snapshot(tidebase_env, tide.settings.schema, "zombie-1") == before

    taker.send()
    assert taker.finish().startswith("RESULT")
    assert executions(log) == {"step1": 1, "step2": 2, "step3": 1, "step4": 1}
    assert {s.name: s.attempt for s in tide.runs.steps("zombie-1")} == {
        "step1": 1,
        "step2": 2,
        "step3": 2,
        "step4": 2,
    }
    assert tide.runs.get("zombie-1").status == "completed"


def _snapshot(env: dict[str, str], schema: str, run_id: str) -> dict[str, list[tuple]]:
    """Every row the run owns, to compare before and after the zombie wakes up."""
    with psycopg.connect(env["TIDEBASE_DATABASE_URL"]) as conn:
        run = conn.execute(
            f'SELECT status, attempt, last_seq, result::text, owner_token FROM "{schema}".runs '
            "WHERE run_id = %s",
            (run_id,),
        ).fetchone()
        steps = conn.execute(
            "SELECT step_key, status, seq, attempt, output::text, updated_at "
            f'FROM "{schema}".steps '
            "WHERE run_id = %s ORDER BY step_key",
            (run_id,),
        ).fetchall()
        events = conn.execute(
            f'SELECT seq, type, payload::text FROM "{schema}".events '
            "WHERE run_id = %s ORDER BY seq",
            (run_id,),
        ).fetchall()
    return {"run": list(run or ()), "steps": steps, "events": events}
