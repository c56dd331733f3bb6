"""The real ``python -m tidebase`` in a subprocess: ``runs list`` on the embedded default, and
``gates approve`` unblocking a worker that waits at the gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tidebase import Tidebase
from tidebase_core import embedded

from .cli_helpers import approval_flow, gate_pending, in_thread, wait_for
from .test_cli_runs import two_steps

pytestmark = pytest.mark.slow


def tidebase_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tidebase", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def default_schema(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A schema of its own in the embedded server's default database (what a user without
    TIDEBASE_DATABASE_URL gets), dropped afterwards."""
    if os.environ.get("TIDEBASE_TEST_DATABASE_URL"):
        pytest.skip("the embedded default is not used with TIDEBASE_TEST_DATABASE_URL")
    monkeypatch.delenv("TIDEBASE_DATABASE_URL", raising=False)
    schema = f"t_cli_{uuid.uuid4().hex[:10]}"
    yield schema
    url = embedded.embedded_url(os.environ["TIDEBASE_HOME"])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_runs_list_on_the_embedded_default(default_schema: str) -> None:
    with Tidebase(schema=default_schema) as tide:
        assert tide.settings.database_url is None  # the embedded default
        tide.run("two-steps", two_steps, run_id="sub-1")
    env = {k: v for k, v in os.environ.items() if k != "TIDEBASE_DATABASE_URL"}
    env["TIDEBASE_SCHEMA"] = default_schema

    listed = tidebase_cli("runs", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [(r["run_id"], r["status"]) for r in json.loads(listed.stdout)] == [
        ("sub-1", "completed")
    ]
    table = tidebase_cli("runs", "list", env=env)
    assert table.returncode == 0 and "sub-1" in table.stdout and "two-steps" in table.stdout
    missing = tidebase_cli("runs", "show", "nope", env=env)
    assert missing.returncode == 1 and "no run 'nope'" in missing.stderr


def test_gates_approve_in_a_subprocess_unblocks_the_waiting_worker(
    tide: Tidebase, tidebase_env: dict[str, str]
) -> None:
    thread, outcome = in_thread(tide, approval_flow, "proc-gate")
    wait_for(lambda: gate_pending(tide, "proc-gate"), what="the worker to wait at the gate")
    assert tide.runs.get("proc-gate").status == "waiting"

    shown = tidebase_cli("runs", "show", "proc-gate", env=tidebase_env)
    assert "tidebase gates approve proc-gate ship" in shown.stdout, shown.stderr

    done = tidebase_cli(
        "gates", "approve", "proc-gate", "ship", "--actor", "oncall", env=tidebase_env
    )
    assert done.returncode == 0, done.stderr
    assert "approved by oncall" in done.stdout
    thread.join(30)
    assert outcome == ["shipped by oncall"]
    assert tide.runs.get("proc-gate").status == "completed"

    twice = tidebase_cli("gates", "approve", "proc-gate", "ship", env=tidebase_env)
    assert twice.returncode == 1 and "already approved by oncall" in twice.stderr
