"""The official ``tidebase==0.7.0`` Python SDK (from PyPI, in a virtualenv of its own: its
distribution name is this project's) drives runs against this server over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tidebase import RunContext, Tidebase, verify_webhook_signature

from .conftest import KEY, RunningServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DRIVE = Path(__file__).parent / "sdk" / "drive.py"
SDK_VERSION = "0.7.0"


@pytest.fixture(scope="session")
def sdk_python() -> str:
    """The interpreter of a virtualenv holding the official SDK (made once, then reused)."""
    venv = ROOT / ".tidebase" / f"official-sdk-{SDK_VERSION}"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"tidebase=={SDK_VERSION}"],
            check=True,
        )
    return str(python)


def _drive(
    sdk_python: str, url: str, scenario: str, *args: str, api_key: str | None = None
) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEBASE_")}
    env["TIDEBASE_URL"] = url
    if api_key:
        env["TIDEBASE_API_KEY"] = api_key
    done = subprocess.run(
        [sdk_python, str(DRIVE), scenario, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=DRIVE.parent,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_sdk_is_the_official_one(sdk_python: str) -> None:
    out = subprocess.run(
        [sdk_python, "-c", "import importlib.metadata as m; print(m.version('tidebase'))"],
        cwd=DRIVE.parent,  # not the project root, whose own `tidebase` would be found first
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == SDK_VERSION


def test_create_steps_complete_and_sse(sdk_python: str, server: RunningServer) -> None:
    out = _drive(sdk_python, server.url, "basic")
    assert out["result"] == {"b": 4}
    assert out["calls"] == ["a", "b"]
    assert out["run"]["status"] == "completed"
    events = out["events"]
    assert events[0] == "run.created"
    assert events[-1] == "run.completed"
    assert events.count("step.completed") == 2


def test_resume_replays_completed_steps(
    sdk_python: str, server: RunningServer, tide: Tidebase
) -> None:
    out = _drive(sdk_python, server.url, "resume")
    assert out["first"] == "crash in b"
    assert out["after_crash"] == "failed"
    assert out["result"] == "AB"
    assert out["calls"] == ["a", "b", "b"]  # a replayed from its checkpoint


def test_step_retries(sdk_python: str, server: RunningServer) -> None:
    out = _drive(sdk_python, server.url, "retries")
    assert out["result"] == "ok"
    assert out["tries"] == 3
    assert out["step"] == {"status": "completed", "attempt": 3}


def test_gate_resolved_with_the_token(sdk_python: str, server: RunningServer) -> None:
    out = _drive(sdk_python, server.url, "gate")
    assert out["resolved"] == "approved"
    assert out["result"] == {"approved": True, "actor": "sdk-human"}
    assert out["token_hidden_in_detail"] is True  # no API key: readers get no token


def test_cancel(sdk_python: str, server: RunningServer) -> None:
    out = _drive(sdk_python, server.url, "cancel")
    assert out == {"cancelled": "stop", "raised": "RunCancelled"}


def test_sdk_watches_and_approves_an_in_process_run(
    sdk_python: str, make_server: Callable[..., RunningServer], tide: Tidebase
) -> None:
    server = make_server(api_key=KEY)

    def wf(run: RunContext, data: Any) -> str:
        run.step("draft", lambda: "text")
        decision = run.gate("approve", "Send it?", timeout=60)
        return run.step("send", lambda: f"sent by {decision.actor}")

    outcome: list[Any] = []
    tide_run = threading.Thread(
        target=lambda: outcome.append(tide.run("inproc", wf, run_id="shared-1"))
    )
    tide_run.start()
    out = _drive(sdk_python, server.url, "watch_and_approve", "shared-1", api_key=KEY)
    tide_run.join(30)
    assert outcome == ["sent by sdk"]
    assert out["events"][0] == "run.started"
    assert "gate.opened" in out["events"]
    assert out["events"][-1] == "run.completed"


def test_state_usage_and_fanout(sdk_python: str, server: RunningServer, tide: Tidebase) -> None:
    out = _drive(sdk_python, server.url, "state_usage_fanout")
    assert out["result"] == [4, 9]
    assert out["state"] == {"phase": "done", "progress": 0.5}
    assert out["labeled"] == ["halfway"]
    assert out["first_version"] == ["start", "checkpoint"]
    assert out["usage"] == [["gpt-4o", 15], [None, None]]
    assert out["quantities"] == [["llm", None, None], ["search", 3, "queries"]]
    assert out["children"] == ["completed", "completed"]
    assert out["edges"] == [["sq-2", "fanout"], ["sq-3", "fanout"]]
    assert [c.status for c in tide.runs.children(out["run_id"])] == ["completed", "completed"]


def test_session_attach(sdk_python: str, server: RunningServer) -> None:
    out = _drive(sdk_python, server.url, "session")
    assert out["step"] == 1
    assert out["heartbeat"] == "running"
    assert out["gate_status"] == "pending"
    assert out["complete"] == "completed"


def test_async_workflow(sdk_python: str, server: RunningServer, tide: Tidebase) -> None:
    out = _drive(sdk_python, server.url, "async_workflow")
    assert out["result"] == "plan x/draft"
    [run] = [r for r in tide.runs.list() if r.workflow_name == "sdk-async"]
    assert run.status == "completed"
    assert tide.runs.state(run.run_id) == {"plan": "plan x"}
    assert [r.total_tokens for r in tide.usage.records(run.run_id)] == [7]


def test_non_blocking_gates(sdk_python: str, server: RunningServer) -> None:
    out = _drive(sdk_python, server.url, "nonblocking_gate")
    assert out == {"same_id": True, "get": "approved", "replay": "approved"}


def test_enqueue_and_work(
    sdk_python: str, server: RunningServer, tide: Tidebase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEBASE_RETRY_BASE_SECONDS", "0.1")  # the server's retry backoff
    out = _drive(sdk_python, server.url, "enqueue_work", "sdk-q1")
    assert out["enqueued"] == "queued"
    assert out["result"] == 42
    assert out["events"][0] == "run.enqueued"
    assert out["events"][-1] == "run.completed"
    assert out["retried"] == {
        "result": "ok",
        "attempt": 2,
        "calls": 2,
        "events": [
            "run.enqueued",
            "run.claimed",
            "run.requeued",
            "run.claimed",
            "step.started",
            "step.completed",
            "run.completed",
        ],
    }
    assert out["stats"] == {"queued": 0, "running": 0, "completed": 2}
    assert [r.status for r in tide.runs.list() if r.workflow_name == "sdk-queued"] == ["completed"]


def test_dedupe_and_cancel(sdk_python: str, server: RunningServer) -> None:
    out = _drive(sdk_python, server.url, "dedupe_cancel", "sdk-q2")
    assert out == {
        "same": True,
        "deduplicated": [False, True],
        "cancelled": ["cancelled", "not needed", "sdk"],
        "again": "cancelled",
        "freed": True,
    }


def test_worker_blocked_on_a_gate_unwinds_on_cancel(sdk_python: str, server: RunningServer) -> None:
    out = _drive(sdk_python, server.url, "gate_cancel", "sdk-q3")
    assert out == {"observed": ["RunCancelled"], "status": ["cancelled", "sdk test"]}


def test_schedules_and_queue_config(sdk_python: str, server: RunningServer, tide: Tidebase) -> None:
    out = _drive(sdk_python, server.url, "schedules", "sdk-q4")
    assert out["schedule"] == {
        "name": "sdk-sched-sdk-q4",
        "cron": "0 9 * * *",
        "workflowName": "sdk-digest",
        "queue": "sdk-q4",
    }
    assert (out["has_next"], out["listed"], out["after"]) == (True, True, False)
    assert out["deleted"] == {"deleted": "sdk-sched-sdk-q4"}
    assert out["config"] == {
        "name": "sdk-q4",
        "concurrency": 2,
        "ratePerMinute": 30,
        "invokeUrl": None,
    }
    [info] = [q for q in tide.queues.list() if q.name == "sdk-q4"]
    assert (info.concurrency, info.rate_per_minute) == (2, 30)


def test_gate_timeouts(sdk_python: str, server: RunningServer) -> None:
    out = _drive(sdk_python, server.url, "gate_timeout")
    assert out["first"] == "pending"
    assert out["late"] == ["rejected", "timeout", {"reason": "timeout"}]
    assert out["blocking"] in ("rejected", "TimeoutError")
    assert out["blocking_gate"] == ["rejected", "timeout"]


def test_channels(sdk_python: str, server: RunningServer) -> None:
    from .test_channels import Receiver

    receiver = Receiver()
    try:
        out = _drive(sdk_python, server.url, "channels", receiver.url)
    finally:
        receiver.http.shutdown()
    assert out["result"] == 7
    assert out["deliveries"] == [["run.completed", "delivered"]]
    [(signature, body)] = receiver.received
    assert verify_webhook_signature(body, signature, "s3cret")
    assert json.loads(body)["runId"] == out["run_id"]
