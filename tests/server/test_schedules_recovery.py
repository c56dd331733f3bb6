"""Schedules, push queues and recovery over HTTP (upstream's schedules and e2e-recovery tests,
in this project's words): a due schedule enqueues exactly once however many servers tick, bad
cron is refused before anything is stored, push queues POST a signed ``run.invoke`` once per
redelivery window, ``POST /runs/{id}/recover`` puts a run back and fires its webhook."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tidebase import Tidebase, verify_webhook_signature

from .conftest import RunningServer

SECRET = "webhook-test-secret"


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records (headers, raw body) of each POST."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def payloads(self) -> list[dict[str, Any]]:
        for headers, body in self.received:
            assert verify_webhook_signature(body, headers.get("x-tidebase-signature"), SECRET)
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setenv("TIDEBASE_WEBHOOK_SECRET", SECRET)
    r = Receiver()
    yield r
    r.http.shutdown()


def _wait(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _client(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


def test_schedule_round_trip(http: httpx.Client, tide: Tidebase) -> None:
    name = f"s-{uuid.uuid4().hex[:8]}"
    put = http.put(
        f"/schedules/{name}",
        json={"cron": "0 9 * * *", "workflowName": "digest", "input": {"k": 1}, "queue": "q1"},
    )
    assert put.status_code == 200, put.text
    schedule = put.json()["schedule"]
    assert {k: schedule[k] for k in ("name", "cron", "workflowName", "input", "queue")} == {
        "name": name,
        "cron": "0 9 * * *",
        "workflowName": "digest",
        "input": {"k": 1},
        "queue": "q1",
    }
    assert (schedule["maxAttempts"], schedule["enabled"], schedule["lastEnqueuedAt"]) == (
        1,
        True,
        None,
    )
    next_run = datetime.fromisoformat(schedule["nextRunAt"])
    assert next_run > datetime.now(UTC)
    assert (next_run.hour, next_run.minute) == (9, 0)
    assert schedule["createdAt"] and schedule["updatedAt"]
    # One store: the in-process API sees it.
    assert [s.workflow_name for s in tide.schedules.list() if s.name == name] == ["digest"]
    listed = http.get("/schedules").json()["schedules"]
    assert [s["name"] for s in listed] == sorted(s["name"] for s in listed)
    assert name in [s["name"] for s in listed]
    deleted = http.delete(f"/schedules/{name}")
    assert deleted.json() == {"deleted": name}
    missing = http.delete(f"/schedules/{name}")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert name not in [s["name"] for s in http.get("/schedules").json()["schedules"]]


def test_bad_schedules_are_refused_before_anything_is_stored(http: httpx.Client) -> None:
    name = f"s-{uuid.uuid4().hex[:8]}"
    for body, field in [
        ({"cron": "0 9 * * *"}, "workflowName"),
        ({"cron": "0 9 * * *", "workflowName": "wf", "maxAttempts": 0}, "maxAttempts"),
    ]:
        res = http.put(f"/schedules/{name}", json=body)
        assert (res.status_code, res.json()["code"]) == (400, "invalid_request"), res.text
        assert field in res.text
    # A cron our parser refuses is 500, as upstream answers (and its schedules test asserts).
    for cron in ("not a cron", "* * * *", "61 * * * *"):
        res = http.put(f"/schedules/{name}", json={"cron": cron, "workflowName": "wf"})
        assert (res.status_code, res.json()["code"]) == (500, "invalid_cron"), res.text
        assert res.json()["field"] == "cron"
        assert cron in res.json()["error"]
    assert name not in [s["name"] for s in http.get("/schedules").json()["schedules"]]


def test_a_due_schedule_enqueues_once_across_servers(
    make_server: Callable[..., RunningServer], tide: Tidebase
) -> None:
    name = f"s-{uuid.uuid4().hex[:8]}"
    queue = f"sq-{uuid.uuid4().hex[:8]}"
    # Due since 2021: its next fire after now is next January.
    tide.schedules.set(
        name,
        cron="0 0 1 1 *",
        workflow_name="scheduled-wf",
        queue=queue,
        input={"from": "cron"},
        now=datetime(2020, 12, 31, 23, 59, tzinfo=UTC),
    )
    servers = [make_server(reconcile_seconds=0.05) for _ in range(3)]
    with _client(servers[0]) as http:

        def mine() -> list[dict[str, Any]]:
            runs: list[dict[str, Any]] = http.get("/runs", params={"limit": 1000}).json()["runs"]
            return [r for r in runs if r["queue"] == queue]

        _wait(lambda: len(mine()) >= 1)
        time.sleep(0.5)  # ten more ticks of each server
        [run] = mine()
        assert run["status"] == "queued"
        assert run["workflowName"] == "scheduled-wf"
        assert run["input"] == {"from": "cron"}
        assert run["dedupeKey"].startswith(f"sched:{name}:2021-01-01T00:00:00")
        [schedule] = [s for s in http.get("/schedules").json()["schedules"] if s["name"] == name]
        assert datetime.fromisoformat(schedule["nextRunAt"]) > datetime.now(UTC)
        assert schedule["lastEnqueuedAt"] is not None


def test_push_queue_posts_a_signed_invoke_once_per_window(
    make_server: Callable[..., RunningServer], receiver: Receiver
) -> None:
    server = make_server(reconcile_seconds=0.05)
    queue = f"pq-{uuid.uuid4().hex[:8]}"
    with _client(server) as http:
        conf = http.put(f"/queues/{queue}/config", json={"invokeUrl": receiver.url})
        assert conf.json()["config"]["invokeUrl"] == receiver.url
        run_id = http.post(f"/queues/{queue}/enqueue", json={"workflowName": "wf"}).json()["run"][
            "id"
        ]
        _wait(lambda: len(receiver.received) >= 1)
        time.sleep(0.5)  # ten more ticks: still one delivery (the run is still queued)
        [payload] = receiver.payloads()
        assert payload["type"] == "run.invoke"
        assert payload["runId"] == run_id
        assert payload["queue"] == queue
        detail = http.get(f"/runs/{run_id}").json()
        assert detail["run"]["status"] == "queued"
        [attempt] = detail["recoveryAttempts"]
        assert (attempt["kind"], attempt["status"], attempt["httpStatus"]) == (
            "run.invoke",
            "delivered",
            200,
        )
        assert attempt["reason"] == "queue_dispatch"  # upstream's reason for a push


def _failed_plain_run(http: httpx.Client, **body: Any) -> str:
    run_id: str = http.post("/runs/recoverable", json=body).json()["run"]["id"]
    http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w1"})
    http.post(f"/runs/{run_id}/fail", json={"error": {"message": "process crashed"}})
    return run_id


def test_recover_puts_a_failed_run_back_and_fires_its_webhook(
    http: httpx.Client, receiver: Receiver, tide: Tidebase
) -> None:
    run_id = _failed_plain_run(http, recoveryWebhook=receiver.url)
    assert http.get(f"/runs/{run_id}").json()["run"]["recoveryWebhook"] == receiver.url
    res = http.post(f"/runs/{run_id}/recover", json={"reason": "operator"})
    assert res.status_code == 200, res.text
    answer = res.json()
    assert answer["run"]["status"] == "pending"
    attempt = answer["recoveryAttempt"]
    assert (attempt["status"], attempt["httpStatus"], attempt["reason"]) == (
        "delivered",
        200,
        "operator",
    )
    assert attempt["webhookUrl"] == receiver.url
    # The failure itself nudged the webhook first (upstream's run_failed); recover sends again.
    assert [(p["type"], p["runId"], p["reason"]) for p in receiver.payloads()] == [
        ("run.resume", run_id, "run_failed"),
        ("run.resume", run_id, "operator"),
    ]
    detail = http.get(f"/runs/{run_id}").json()
    assert "run.recovering" in [e["type"] for e in detail["events"]]
    assert [a["status"] for a in detail["recoveryAttempts"]] == ["delivered", "delivered"]
    # The run can be driven again, over HTTP or in-process.
    assert tide.run("recoverable", lambda run, data: "again", run_id=run_id) == "again"


def test_recover_without_a_webhook_is_422_and_changes_nothing(http: httpx.Client) -> None:
    """As upstream: a plain run without a recoveryWebhook has nothing to re-invoke it."""
    run_id = _failed_plain_run(http)
    before = http.get(f"/runs/{run_id}").json()
    res = http.post(f"/runs/{run_id}/recover", json={})
    assert (res.status_code, res.json()["code"]) == (422, "no_recovery_webhook")
    assert res.json()["error"] == "run has no recoveryWebhook configured"
    after = http.get(f"/runs/{run_id}").json()
    assert after["run"]["status"] == "failed"
    assert after["events"] == before["events"]


def test_recover_refusals(http: httpx.Client) -> None:
    missing = http.post("/runs/run_nope/recover", json={})
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    hook = {"recoveryWebhook": "http://127.0.0.1:9/hook"}
    leased = http.post("/runs/wf", json=hook).json()["run"]["id"]
    http.post(f"/runs/{leased}/begin", headers={"x-tidebase-worker": "alive"})
    res = http.post(f"/runs/{leased}/recover", json={})
    assert (res.status_code, res.json()["code"], res.json()["leaseOwner"]) == (
        409,
        "run_leased",
        "alive",
    )
    http.post(f"/runs/{leased}/complete", json={"result": 1})
    res = http.post(f"/runs/{leased}/recover", json={})
    assert (res.status_code, res.json()["code"]) == (409, "run_completed")
    assert http.get(f"/runs/{leased}").json()["run"]["status"] == "completed"


def test_recover_a_queued_run_that_gave_up(http: httpx.Client) -> None:
    queue = f"q-{uuid.uuid4().hex[:8]}"
    run_id = http.post(f"/queues/{queue}/enqueue", json={"workflowName": "wf"}).json()["run"]["id"]
    http.post("/queues/claim", json={"queues": [queue]})
    failed = http.post(f"/runs/{run_id}/fail", json={"error": {"message": "x"}}).json()
    assert (failed["run"]["status"], failed["run"]["failureClass"]) == ("failed", "max_retries")
    answer = http.post(f"/runs/{run_id}/recover", json={"reason": "fixed"}).json()
    assert answer["run"]["status"] == "queued"
    [claimed] = http.post("/queues/claim", json={"queues": [queue]}).json()["runs"]
    assert (claimed["id"], claimed["attempt"]) == (run_id, 2)


def test_bad_recovery_webhook_is_refused(http: httpx.Client) -> None:
    res = http.post("/runs/wf", json={"recoveryWebhook": "javascript:alert(1)"})
    assert (res.status_code, res.json()["code"]) == (400, "invalid_request")
    assert "recoveryWebhook" in res.text


def test_a_stalled_run_with_a_webhook_is_nudged_by_the_reconciler(
    make_server: Callable[..., RunningServer], receiver: Receiver
) -> None:
    """A plain run whose protocol worker stopped heartbeating: once its lease lapses, the
    server's reconciler POSTs its recovery webhook (once per throttle window)."""
    server = make_server(lease_seconds=0.3, reconcile_seconds=0.05)
    with _client(server) as http:
        run_id = http.post("/runs/stalls", json={"recoveryWebhook": receiver.url}).json()["run"][
            "id"
        ]
        http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "gone"})

        def attempts() -> list[str]:
            detail = http.get(f"/runs/{run_id}").json()
            return [a["status"] for a in detail["recoveryAttempts"]]

        # The attempt is recorded once the receiver answered (a busy machine takes a while).
        _wait(lambda: len(receiver.received) >= 1 and attempts() != [])
        time.sleep(0.3)  # six more ticks: throttled, still one
        [payload] = receiver.payloads()
        assert (payload["type"], payload["runId"], payload["reason"]) == (
            "run.resume",
            run_id,
            "lease_expired",
        )
        assert attempts() == ["delivered"]


def test_a_failed_run_with_a_webhook_is_nudged_to_resume(
    http: httpx.Client, receiver: Receiver, tide: Tidebase
) -> None:
    """As upstream: POST /runs/{id}/fail of a plain run with a recovery webhook POSTs it
    (before answering), once per throttle window; the run stays failed until someone resumes
    it, and resuming replays its completed steps."""
    run_id = http.post("/runs/nudged", json={"recoveryWebhook": receiver.url}).json()["run"]["id"]
    http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w1"})
    step = http.post(
        f"/runs/{run_id}/steps/begin", json={"name": "fetch", "inputHash": "h", "leaseOwner": "w1"}
    ).json()["step"]
    http.post(f"/runs/{run_id}/steps/{step['id']}/complete", json={"leaseOwner": "w1", "output": 3})
    failed = http.post(f"/runs/{run_id}/fail", json={"error": {"message": "crashed"}}).json()
    assert failed["run"]["status"] == "failed"
    [payload] = receiver.payloads()  # delivered before fail answered
    assert (payload["type"], payload["runId"], payload["reason"]) == (
        "run.resume",
        run_id,
        "run_failed",
    )
    # Upstream's recovery events, as its e2e test reads them.
    events = [e["type"] for e in http.get(f"/runs/{run_id}").json()["events"]]
    assert events[-2:] == ["recovery.started", "recovery.delivered"]
    # Failing again at once: throttled, still one webhook.
    http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w2"})
    http.post(f"/runs/{run_id}/fail", json={"error": {"message": "again"}})
    assert len(receiver.received) == 1
    # What the receiving app does: resume the run; the completed step replays.
    http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w3"})
    replay = http.post(
        f"/runs/{run_id}/steps/begin", json={"name": "fetch", "inputHash": "h", "leaseOwner": "w3"}
    ).json()
    assert (replay["action"], replay["output"]) == ("return", 3)
    done = http.post(f"/runs/{run_id}/complete", json={"result": 4}).json()
    assert done["run"]["status"] == "completed"
    assert tide.runs.get(run_id).status == "completed"
