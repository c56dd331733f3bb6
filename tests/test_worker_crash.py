"""A worker SIGKILLed mid-run: its run is requeued and completed by another worker, and each
completed step executed once (guarantee 12)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tidebase import Tidebase

from .conftest import executions
from .test_queues import wait_for


def _counts(log: Path, run_id: str) -> dict[str, int]:
    return {key.split(":", 1)[1]: n for key, n in executions(log).items() if key.startswith(run_id)}


def _stop(worker: Any) -> None:
    worker.proc.send_signal(signal.SIGTERM)
    worker.expect("STOPPED")
    worker.proc.wait(30)


def test_killed_worker_run_is_requeued_at_once_and_completed(
    tide: Tidebase, spawn: Any, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    e = tide.enqueue("three-steps", queue="crash")
    run_id = e.run.run_id
    first = spawn("crash", log, module="tests.queue_worker", BLOCK_AT="b")
    first.expect(f"IN {run_id} b")
    first.kill()  # SIGKILL while step b runs; step a is checkpointed
    assert tide.runs.get(run_id).status == "running"  # nobody has noticed yet

    # The lease is 60 s: only the same-host dead-owner check can requeue it this fast.
    second = spawn("crash", log, module="tests.queue_worker")
    second.expect("READY")
    wait_for(lambda: tide.runs.get(run_id).status == "completed", timeout=20, what="completion")
    _stop(second)

    run = tide.runs.get(run_id)
    assert run.result == ["a done", "b done", "c done"]
    assert run.attempt == 2
    assert _counts(log, run_id) == {"a": 1, "b": 2, "c": 1}  # b never completed the first time
    requeued = [ev for ev in tide.runs.events(run_id) if ev.type == "run.requeued"]
    assert [ev.payload for ev in requeued] == [
        {"reason": "owner_died", "attempt": 1, "maxAttempts": 1}
    ]


def test_across_hosts_the_run_is_requeued_after_lease_expiry(
    tide: Tidebase, spawn: Any, tmp_path: Path, tidebase_database_url: str, tidebase_schema: str
) -> None:
    log = tmp_path / "log"
    run_id = tide.enqueue("three-steps", queue="crash").run.run_id
    first = spawn(
        "crash", log, module="tests.queue_worker", BLOCK_AT="b", TIDEBASE_LEASE_SECONDS="1.5"
    )
    first.expect(f"IN {run_id} b")
    first.kill()
    # Make the dead owner look like a process of another host: nothing can be known of it,
    # so only the lease's expiry frees the run.
    with psycopg.connect(tidebase_database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("UPDATE {}.runs SET owner_host = 'elsewhere|boot|ns' WHERE run_id = %s").format(
                sql.Identifier(tidebase_schema)
            ),
            (run_id,),
        )
    second = spawn("crash", log, module="tests.queue_worker")
    second.expect("READY")
    wait_for(lambda: tide.runs.get(run_id).status == "completed", timeout=30, what="completion")
    _stop(second)
    assert _counts(log, run_id) == {"a": 1, "b": 2, "c": 1}
    requeued = [ev for ev in tide.runs.events(run_id) if ev.type == "run.requeued"]
    assert [ev.payload for ev in requeued] == [
        {"reason": "lease_expired", "attempt": 1, "maxAttempts": 1}
    ]


def test_a_worker_recovers_a_plain_run_whose_process_died(
    tide: Tidebase, spawn: Any, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    script = spawn("-", log, module="tests.queue_worker", BLOCK_AT="b", PLAIN_RUN="plain-1")
    script.expect("IN plain-1 b")
    script.kill()
    assert tide.runs.get("plain-1").status == "running"
    worker = spawn("unrelated-queue", log, module="tests.queue_worker")
    worker.expect("READY")
    wait_for(lambda: tide.runs.get("plain-1").status == "completed", timeout=20)
    _stop(worker)
    assert _counts(log, "plain-1") == {"a": 1, "b": 2, "c": 1}


def test_sigterm_drains_a_worker_process(tide: Tidebase, spawn: Any, tmp_path: Path) -> None:
    log = tmp_path / "log"
    run_id = tide.enqueue("three-steps", queue="drain").run.run_id
    other = tide.enqueue("three-steps", queue="drain").run.run_id
    worker = spawn("drain", log, module="tests.queue_worker", BLOCK_AT="b")
    line = worker.expect("IN ")
    held = line.split()[1]
    worker.proc.send_signal(signal.SIGTERM)
    worker.expect("DRAINING")  # the signal was seen: no more claims from here on
    worker.send("go")  # let step b finish: the run in hand completes, nothing more is claimed
    worker.expect("STOPPED")
    assert worker.proc.wait(30) == 0
    assert tide.runs.get(held).status == "completed"
    rest = other if held == run_id else run_id
    run = tide.runs.get(rest)
    assert run.status == "queued" and run.attempt == 0


def test_tidebase_worker_runs_a_module_and_drains_on_sigterm(
    tide: Tidebase, tidebase_env: dict[str, str]
) -> None:
    import subprocess
    import sys

    from .conftest import ROOT

    run_id = tide.enqueue("cli-job", queue="cli", input={"who": "cli"}).run.run_id
    env = {**tidebase_env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tidebase",
            "worker",
            "tests.jobs_module:tide",
            "-q",
            "cli",
            "--poll",
            "0.05",
        ],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: tide.runs.get(run_id).status == "completed", timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    assert tide.runs.get(run_id).result == "hello cli"
    assert f"claimed run {run_id}" in err and f"finished run {run_id}" in err
    assert "SIGTERM: draining" in err and "drained and stopped" in err
