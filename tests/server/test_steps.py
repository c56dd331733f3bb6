"""The remote-step model over HTTP: steps/begin actions, step leases and fencing, attempts,
resume decisions, run leases (begin/heartbeat/complete/fail), remote gates; and runs driven
over HTTP seen by the in-process API."""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tidebase import Tidebase
from tidebase.errors import RunLocked

from .conftest import RunningServer


@pytest.fixture
def short(make_server: Callable[..., RunningServer]) -> Iterator[httpx.Client]:
    """A server whose protocol leases last 0.3 s (TIDEBASE_LEASE_MS=300 upstream)."""
    server = make_server(lease_seconds=0.3)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def _run(http: httpx.Client, workflow: str = "wf") -> str:
    run_id: str = http.post(f"/runs/{workflow}", json={"input": {"n": 1}}).json()["run"]["id"]
    return run_id


def _begin(http: httpx.Client, run_id: str, name: str, **body: Any) -> dict[str, Any]:
    res = http.post(
        f"/runs/{run_id}/steps/begin",
        json={"name": name, "inputHash": "hash-1", "input": {"n": 1}, **body},
    )
    assert res.status_code == 200, res.text
    answer: dict[str, Any] = res.json()
    return answer


def test_replay_returns_the_checkpoint(http: httpx.Client) -> None:
    run_id = _run(http)
    first = _begin(http, run_id, "fetch", leaseOwner="w1")
    assert first["action"] == "execute"
    assert first["leaseOwner"] == "w1"
    assert first["step"]["attempt"] == 1
    assert first["step"]["status"] == "running"
    step_id = first["step"]["id"]
    done = http.post(
        f"/runs/{run_id}/steps/{step_id}/complete",
        json={"leaseOwner": "w1", "output": {"rows": 42}},
    )
    assert done.status_code == 200
    assert done.json()["step"]["status"] == "completed"
    replay = _begin(http, run_id, "fetch", leaseOwner="w2")
    assert replay["action"] == "return"
    assert replay["output"] == {"rows": 42}
    events = [e["type"] for e in http.get(f"/runs/{run_id}").json()["events"]]
    assert events == ["run.created", "step.started", "step.completed"]


def test_input_mismatch(http: httpx.Client) -> None:
    run_id = _run(http)
    first = _begin(http, run_id, "fetch", leaseOwner="w1")
    http.post(
        f"/runs/{run_id}/steps/{first['step']['id']}/complete",
        json={"leaseOwner": "w1", "output": "a"},
    )
    drifted = _begin(http, run_id, "fetch", inputHash="hash-2", leaseOwner="w2")
    assert drifted["action"] == "input_mismatch"
    assert drifted["expectedInputHash"] == "hash-1"
    assert drifted["actualInputHash"] == "hash-2"


def test_retryable_failure_then_retry_counts_attempts(http: httpx.Client) -> None:
    run_id = _run(http)
    first = _begin(http, run_id, "flaky", leaseOwner="w1")
    failed = http.post(
        f"/runs/{run_id}/steps/{first['step']['id']}/fail",
        json={"leaseOwner": "w1", "error": {"message": "boom"}, "retryable": True},
    )
    assert failed.status_code == 200
    assert failed.json()["step"]["status"] == "failed_retryable"
    retry = _begin(http, run_id, "flaky", leaseOwner="w1")
    assert retry["action"] == "execute"
    assert retry["step"]["attempt"] == 2


def test_step_lease_excludes_other_workers_and_fences_complete_and_fail(
    http: httpx.Client,
) -> None:
    run_id = _run(http)
    first = _begin(http, run_id, "guarded", leaseOwner="w1")
    assert _begin(http, run_id, "guarded", leaseOwner="w2")["action"] == "locked"
    assert _begin(http, run_id, "guarded", leaseOwner="w1")["action"] == "execute"  # its own
    step_id = first["step"]["id"]
    for path, body in (
        ("complete", {"leaseOwner": "stale", "output": "x"}),
        ("fail", {"leaseOwner": "stale", "error": {"message": "x"}}),
    ):
        res = http.post(f"/runs/{run_id}/steps/{step_id}/{path}", json=body)
        assert res.status_code == 409
        assert res.json()["code"] == "lease_lost"
    ok = http.post(
        f"/runs/{run_id}/steps/{step_id}/complete", json={"leaseOwner": "w1", "output": 1}
    )
    assert ok.status_code == 200


def test_concurrent_first_begins_execute_exactly_once(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        run_id = _run(client)

    def begin(owner: str) -> str:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return str(_begin(client, run_id, "contested", leaseOwner=owner)["action"])

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        actions = list(pool.map(begin, [f"w{i}" for i in range(6)]))
    assert actions.count("execute") == 1
    assert actions.count("locked") == 5


def test_takeover_after_the_step_lease_lapses_fences_the_zombie(short: httpx.Client) -> None:
    run_id = _run(short)
    first = _begin(short, run_id, "crashable", leaseOwner="w1")
    time.sleep(0.5)  # the 0.3 s lease lapses (the behaviour under test is expiry)
    takeover = _begin(short, run_id, "crashable", leaseOwner="w2")
    assert takeover["action"] == "execute"
    assert takeover["step"]["leaseOwner"] == "w2"
    assert takeover["step"]["attempt"] == 2
    stale = short.post(
        f"/runs/{run_id}/steps/{first['step']['id']}/complete",
        json={"leaseOwner": "w1", "output": "stale"},
    )
    assert stale.status_code == 409


@pytest.mark.parametrize(
    ("options", "retryable", "status", "decision"),
    [
        ({"sideEffects": ["email:send"]}, False, "manual_review", "manual_review"),
        ({"sideEffects": ["email:send"], "idempotencyKey": "o-1"}, False, "failed", "safe_replay"),
        ({"sideEffects": ["read"]}, False, "failed", "safe_replay"),
        ({"sideEffects": ["email:send"]}, True, "failed_retryable", "auto_retry"),
        ({"replay": "never"}, False, "failed", "fail_hard"),
    ],
)
def test_resume_decision_classification(
    http: httpx.Client, options: dict[str, Any], retryable: bool, status: str, decision: str
) -> None:
    run_id = _run(http)
    begun = _begin(http, run_id, "effectful", leaseOwner="w1", options=options)
    failed = http.post(
        f"/runs/{run_id}/steps/{begun['step']['id']}/fail",
        json={"leaseOwner": "w1", "error": {"message": "boom"}, "retryable": retryable},
    ).json()["step"]
    assert failed["status"] == status
    events = http.get(f"/runs/{run_id}").json()["events"]
    [event] = [e for e in events if e["type"] == "step.failed"]
    assert event["payload"]["resumeDecision"] == decision


def test_manual_review_step_is_not_handed_out_again(tide: Tidebase, http: httpx.Client) -> None:
    run_id = _run(http)
    begun = _begin(http, run_id, "send", leaseOwner="w1", options={"sideEffects": ["email"]})
    http.post(
        f"/runs/{run_id}/steps/{begun['step']['id']}/fail",
        json={"leaseOwner": "w1", "error": {"message": "timeout"}},
    )
    res = http.post(
        f"/runs/{run_id}/steps/begin",
        json={"name": "send", "inputHash": "hash-1", "leaseOwner": "w2"},
    )
    assert res.status_code == 409
    assert res.json()["code"] == "manual_review"
    tide.runs.retry_step(run_id, "send", actor="ops")  # the operator releases it
    assert _begin(http, run_id, "send", leaseOwner="w2")["action"] == "execute"


def test_run_lease_begin_heartbeat_complete(http: httpx.Client, tide: Tidebase) -> None:
    run_id = _run(http)
    first = http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w1"})
    assert first.status_code == 200
    assert first.json()["leaseOwner"] == "w1"
    assert first.json()["run"]["status"] == "running"
    assert first.json()["run"]["leaseOwner"] == "w1"
    second = http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w2"})
    assert second.status_code == 409
    assert second.json()["leaseOwner"] == "w1"
    # The in-process API sees the same lease.
    with pytest.raises(RunLocked):
        tide.run("wf", lambda r, i: None, run_id=run_id)
    hb = http.post(f"/runs/{run_id}/heartbeat", json={"leaseOwner": "w1"})
    assert hb.status_code == 200
    lost = http.post(f"/runs/{run_id}/heartbeat", json={"leaseOwner": "w2"})
    assert lost.status_code == 409
    assert lost.json()["code"] == "lease_lost"
    assert http.post(f"/runs/{run_id}/heartbeat", json={}).status_code == 400
    done = http.post(f"/runs/{run_id}/complete", json={"result": {"ok": True}})
    assert done.json()["run"]["status"] == "completed"
    again = http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w2"})
    assert again.status_code == 200
    assert again.json()["run"]["result"] == {"ok": True}
    assert again.json()["run"]["leaseOwner"] is None
    info = tide.runs.get(run_id)
    assert info.status == "completed"
    assert info.result == {"ok": True}
    started = [
        e for e in http.get(f"/runs/{run_id}").json()["events"] if e["type"] == "run.started"
    ]
    assert len(started) == 1  # heartbeats leave no trace in the log


def test_expired_run_lease_is_reclaimed_and_the_zombie_heartbeat_fails(
    short: httpx.Client,
) -> None:
    run_id = _run(short)
    assert (
        short.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w1"}).status_code == 200
    )
    time.sleep(0.5)
    second = short.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w2"})
    assert second.status_code == 200
    assert second.json()["run"]["leaseOwner"] == "w2"
    assert second.json()["run"]["attempt"] == 2
    stale = short.post(f"/runs/{run_id}/heartbeat", json={"leaseOwner": "w1"})
    assert stale.status_code == 409
    assert stale.json()["code"] == "lease_lost"


def test_cancelled_run_blocks_steps_gates_begin_and_is_never_resurrected(
    http: httpx.Client,
) -> None:
    run_id = _run(http)
    http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w1"})
    begun = _begin(http, run_id, "inflight", leaseOwner="w1")
    http.post(f"/runs/{run_id}/cancel", json={"reason": "stop"})
    assert _begin(http, run_id, "next", leaseOwner="w1")["action"] == "cancelled"
    gate = http.post(f"/runs/{run_id}/gates/begin", json={"name": "approve", "prompt": "ok?"})
    assert gate.status_code == 409
    assert gate.json()["code"] == "run_cancelled"
    begin = http.post(f"/runs/{run_id}/begin")
    assert begin.status_code == 409
    assert begin.json()["code"] == "run_cancelled"
    late = http.post(
        f"/runs/{run_id}/steps/{begun['step']['id']}/complete",
        json={"leaseOwner": "w1", "output": 1},
    )
    assert late.status_code == 409
    assert late.json()["code"] == "run_cancelled"
    assert http.post(f"/runs/{run_id}/complete", json={"result": 42}).json()["run"]["status"] == (
        "cancelled"
    )
    fail = http.post(f"/runs/{run_id}/fail", json={"error": {"message": "x"}}).json()
    assert fail["run"]["status"] == "cancelled"
    hb = http.post(f"/runs/{run_id}/heartbeat", json={"leaseOwner": "w1"})
    assert hb.json()["code"] == "run_cancelled"


def test_fail_run(http: httpx.Client, tide: Tidebase) -> None:
    run_id = _run(http)
    http.post(f"/runs/{run_id}/begin")
    res = http.post(f"/runs/{run_id}/fail", json={"error": {"message": "boom"}})
    assert res.status_code == 200
    assert res.json()["requeued"] is False
    assert res.json()["run"]["status"] == "failed"
    assert tide.runs.get(run_id).error == {"message": "boom"}


def test_remote_gate_begin_is_idempotent_and_resolves_once(http: httpx.Client) -> None:
    run_id = _run(http)
    http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w1"})
    body = {"name": "approve", "prompt": "Approve this?", "data": {"amount": 100}}
    first = http.post(f"/runs/{run_id}/gates/begin", json=body).json()
    second = http.post(f"/runs/{run_id}/gates/begin", json=body).json()
    assert first["action"] == second["action"] == "wait"
    assert first["gate"]["id"] == second["gate"]["id"]
    token = first["gate"]["resolveToken"]
    assert token  # the worker that opened it hands the token on
    assert http.get(f"/runs/{run_id}").json()["run"]["status"] == "waiting"
    gate_id = first["gate"]["id"]
    res = http.post(
        f"/runs/{run_id}/gates/{gate_id}/resolve", json={"token": token, "decision": "rejected"}
    )
    assert res.status_code == 200
    replay = http.post(f"/runs/{run_id}/gates/begin", json=body).json()
    assert replay["action"] == "return"
    assert replay["gate"]["decision"] == "rejected"
    assert len(http.get(f"/runs/{run_id}").json()["gates"]) == 1
    # The worker held its lease throughout: the run is running again.
    assert http.get(f"/runs/{run_id}").json()["run"]["status"] == "running"


def test_concurrent_first_gate_begins_yield_one_gate(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        run_id = _run(client)

    def begin(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            res = client.post(f"/runs/{run_id}/gates/begin", json={"name": "race", "prompt": "?"})
            return res.status_code, res.json()["gate"]["id"]

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(begin, range(3)))
    assert {status for status, _ in results} == {200}
    assert len({gate_id for _, gate_id in results}) == 1


def test_in_process_worker_resumes_an_http_run_and_replays_its_steps(
    http: httpx.Client, tide: Tidebase
) -> None:
    """A run driven over HTTP, then resumed in-process: completed remote steps replay."""
    from tidebase_core.serialization import input_hash

    run_id = _run(http)
    h = input_hash({"q": 1}, what="input")
    begun = _begin(http, run_id, "fetch", inputHash=h, input={"q": 1}, leaseOwner="w1")
    http.post(
        f"/runs/{run_id}/steps/{begun['step']['id']}/complete",
        json={"leaseOwner": "w1", "output": [1, 2]},
    )
    calls: list[str] = []

    def wf(run: Any, data: Any) -> Any:
        def body() -> list[int]:
            calls.append("fetch")
            return [9]

        return run.step("fetch", body, input={"q": 1})

    assert tide.run("wf", wf, run_id=run_id) == [1, 2]
    assert calls == []


def test_in_process_takeover_fences_the_http_worker(short: httpx.Client, tide: Tidebase) -> None:
    """A protocol worker's lease lapses, an in-process worker takes the run: the old worker's
    heartbeat is refused and the run shows the new owner."""
    run_id = _run(short)
    assert (
        short.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w1"}).status_code == 200
    )
    time.sleep(0.5)  # the 0.3 s protocol lease lapses
    seen: dict[str, Any] = {}

    def wf(run: Any, data: Any) -> str:
        stale = short.post(f"/runs/{run_id}/heartbeat", json={"leaseOwner": "w1"})
        seen["status"], seen["code"] = stale.status_code, stale.json()["code"]
        seen["owner"] = short.get(f"/runs/{run_id}").json()["run"]["leaseOwner"]
        return "mine"

    assert tide.run("wf", wf, run_id=run_id) == "mine"
    assert seen["status"] == 409
    assert seen["code"] == "lease_lost"
    assert seen["owner"] not in (None, "w1")
