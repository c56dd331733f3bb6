"""Signed webhooks: signature checks, recovery webhooks to a local receiver, push dispatch,
and the ASGI receiver that resumes the run named."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

import tidebase
from tidebase import RunContext, Tidebase
from tidebase.errors import RunNotFound
from tidebase_core._sync.queue_store import QueueStore
from tidebase_core._sync.reconciler import Reconciler
from tidebase_core.webhooks import SIGNATURE_HEADER, sign, verify_webhook_signature

from .test_queues import wait_for

SECRET = "s3cret-for-tests"


class Receiver:
    """An HTTP server on 127.0.0.1 that records what it is sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()


def test_signature_checks() -> None:
    body = b'{"run_id":"r1","type":"run.recover"}'
    header = sign(body, SECRET)
    assert header.startswith("sha256=")
    assert tidebase.verify_webhook_signature(body, header, SECRET)
    assert verify_webhook_signature(body, header.removeprefix("sha256="), SECRET)
    assert not verify_webhook_signature(body + b" ", header, SECRET)  # tampered body
    assert not verify_webhook_signature(body, header[:-1] + "0", SECRET)  # tampered signature
    assert not verify_webhook_signature(body, header, "another secret")
    assert not verify_webhook_signature(body, None, SECRET)
    assert not verify_webhook_signature(body, "", SECRET)


def test_recovery_webhook_reaches_a_local_receiver_signed_and_recorded(
    tide: Tidebase, spawn: Any, tmp_path: Path, receiver: Receiver
) -> None:
    tide.runs.create("three-steps", run_id="hooked", input={}, recovery_webhook=receiver.url)
    script = spawn(
        "-", tmp_path / "log", module="tests.queue_worker", BLOCK_AT="b", PLAIN_RUN="hooked"
    )
    script.expect("IN hooked b")
    script.kill()
    reconciler = Reconciler(tide, webhook_secret=SECRET, webhook_every_s=3600)
    report = reconciler.tick()
    assert report is not None and report.webhooks == [("hooked", 200)]
    [(headers, body)] = receiver.requests
    assert verify_webhook_signature(body, headers[SIGNATURE_HEADER], SECRET)
    payload = json.loads(body)
    # The protocol's recovery webhook, as the official SDKs' handlers read it.
    assert payload == {
        "type": "run.resume",
        "runId": "hooked",
        "workflowName": "three-steps",
        "input": {},
        "reason": "owner_died",
    }
    [attempt] = tide.runs.webhooks("hooked")
    assert (attempt.kind, attempt.url, attempt.status_code, attempt.error) == (
        "run.recover",
        receiver.url,
        200,
        None,
    )
    events = [(e.type, e.payload) for e in tide.runs.events("hooked") if "recovery" in e.type]
    assert events == [
        ("recovery.started", {"reason": "owner_died", "webhookUrl": receiver.url}),
        ("recovery.delivered", {"httpStatus": 200}),
    ]
    # Throttled: the next tick sends nothing while the run stays stalled.
    report = reconciler.tick()
    assert report is not None and report.webhooks == []
    assert len(receiver.requests) == 1 and len(tide.runs.webhooks("hooked")) == 1


def test_an_unsent_webhook_is_recorded_too(tide: Tidebase, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDEBASE_WEBHOOK_SECRET", raising=False)
    tide.runs.create("wf", run_id="nobody-home", recovery_webhook="http://127.0.0.1:9/hook")
    tide.runs.recover("nobody-home", reason="manual")
    [attempt] = tide.runs.webhooks("nobody-home")
    # no secret configured: nothing is sent unsigned, and that is recorded
    assert attempt.status_code is None and "TIDEBASE_WEBHOOK_SECRET" in (attempt.error or "")
    monkeypatch.setenv("TIDEBASE_WEBHOOK_SECRET", SECRET)
    tide.runs.create("wf", run_id="unreachable", recovery_webhook="http://127.0.0.1:9/hook")
    tide.runs.recover("unreachable")
    [attempt] = tide.runs.webhooks("unreachable")
    assert attempt.status_code is None and "refused" in (attempt.error or "").lower()


def test_push_queue_dispatch_is_signed_and_not_redelivered_within_the_horizon(
    tide: Tidebase, receiver: Receiver
) -> None:
    tide.queues.configure("pushed", invoke_url=receiver.url)
    run_id = tide.enqueue("wf", queue="pushed", input={"a": 1}).run.run_id
    reconciler = Reconciler(tide, webhook_secret=SECRET, webhook_every_s=3600)
    report = reconciler.tick()
    assert report is not None and report.dispatched == [run_id]
    [(headers, body)] = receiver.requests
    assert verify_webhook_signature(body, headers[SIGNATURE_HEADER], SECRET)
    assert json.loads(body) == {
        "type": "run.invoke",
        "runId": run_id,
        "workflowName": "wf",
        "queue": "pushed",
    }
    report = reconciler.tick()
    assert report is not None and report.dispatched == []
    assert tide.runs.get(run_id).status == "queued"  # until the app begins it


def _call(app: Any, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def go() -> None:
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return messages.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/",
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        }
        await app(scope, receive, send)

    asyncio.run(go())
    return sent[0]["status"], json.loads(sent[1]["body"])


def test_webhook_app_rejects_tampered_and_resumes_signed(tide: Tidebase) -> None:
    @tide.workflow("resumable")
    def resumable(run: RunContext, input: dict[str, int]) -> int:
        return run.step("double", lambda: input["n"] * 2)

    tide.runs.create("resumable", run_id="via-hook", input={"n": 21})
    app = tide.webhook_app(secret=SECRET)
    body = json.dumps(
        {"type": "run.recover", "run_id": "via-hook", "workflow_name": "resumable"}
    ).encode()
    good = {SIGNATURE_HEADER: sign(body, SECRET), "content-type": "application/json"}
    tampered_body = body.replace(b"via-hook", b"via-hoox")
    assert _call(app, tampered_body, good)[0] == 401
    assert _call(app, body, {SIGNATURE_HEADER: sign(body, "wrong")})[0] == 401
    assert _call(app, body, {})[0] == 401
    assert tide.runs.get("via-hook").status == "pending"  # nothing happened
    status, answer = _call(app, body, good)
    assert (status, answer) == (202, {"accepted": "via-hook"})
    wait_for(lambda: tide.runs.get("via-hook").status == "completed")
    assert tide.runs.get("via-hook").result == 42


def test_webhook_app_needs_a_secret(tide: Tidebase, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDEBASE_WEBHOOK_SECRET", raising=False)
    with pytest.raises(tidebase.errors.TidebaseError, match="TIDEBASE_WEBHOOK_SECRET"):
        tide.webhook_app()


def test_tide_run_records_its_recovery_webhook_and_refuses_a_bad_one(
    tide: Tidebase, receiver: Receiver
) -> None:

    def wf(run: Any, input: Any) -> str:
        return "ok"

    tide.run("wf", wf, run_id="hooked-run", recovery_webhook=receiver.url)
    with tide._store.connection() as db:
        assert QueueStore(db).recovery_webhook("hooked-run") == receiver.url
    with pytest.raises(ValueError, match="recovery_webhook must be an http"):
        tide.run("wf", wf, run_id="bad-hook", recovery_webhook="ftp://example.com")
    with pytest.raises(RunNotFound):
        tide.runs.get("bad-hook")
