"""Webhook channels (upstream's channels tests, in this project's words): matching events are
POSTed with a verifiable HMAC and each attempt recorded; an unreachable channel never fails the
write; a slow channel never blocks other writers; a gate's inline channels get gate.created
with the resolve link; and, beyond upstream, events written in-process reach the channels too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tidebase import RunContext, Tidebase

from .conftest import RunningServer


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[str | None, bytes]] = []
        self.delay = 0.0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                outer.received.append((self.headers.get("x-tidebase-signature"), body))
                time.sleep(outer.delay)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"ok":true}')

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.http.shutdown()


def _create(http: httpx.Client, channels: list[dict[str, Any]], name: str = "chan-wf") -> str:
    res = http.post(f"/runs/{name}", json={"channels": channels})
    assert res.status_code == 200, res.text
    run_id: str = res.json()["run"]["id"]
    return run_id


def test_matching_events_are_delivered_signed_and_recorded(
    http: httpx.Client, receiver: Receiver
) -> None:
    channel = {
        "type": "webhook",
        "url": receiver.url,
        "secret": "chan-secret",
        "events": ["run.completed"],
    }
    run_id = _create(http, [channel])
    http.put(f"/runs/{run_id}/state", json={"value": {"n": 1}})  # not in the channel's events
    http.post(f"/runs/{run_id}/complete", json={"result": "done"})
    # Delivered before complete answered (upstream's order).
    [(signature, body)] = receiver.received
    parsed = json.loads(body)
    assert (parsed["type"], parsed["runId"]) == ("run.completed", run_id)
    assert parsed["payload"]["run"]["status"] == "completed"
    expected = hmac.new(b"chan-secret", body, hashlib.sha256).hexdigest()
    assert signature == f"sha256={expected}"
    detail = http.get(f"/runs/{run_id}").json()
    [delivery] = detail["channelDeliveries"]
    assert (delivery["eventType"], delivery["status"], delivery["httpStatus"]) == (
        "run.completed",
        "delivered",
        200,
    )
    assert delivery["id"] == parsed["deliveryId"]
    [shown] = detail["channels"]
    assert shown["config"] == {"url": receiver.url, "secret": None}  # the secret is not shown
    assert (shown["hasSecret"], shown["events"]) == (True, ["run.completed"])
    assert detail["events"][0]["payload"]["channels"] == [
        {"type": "webhook", "url": receiver.url, "events": ["run.completed"]}
    ]


def test_an_unreachable_channel_never_fails_the_write(http: httpx.Client) -> None:
    run_id = _create(http, [{"type": "webhook", "url": "http://127.0.0.1:1/dead"}])
    res = http.post(f"/runs/{run_id}/complete", json={"result": "done"})
    assert res.status_code == 200
    detail = http.get(f"/runs/{run_id}").json()
    assert detail["run"]["status"] == "completed"
    [delivery] = detail["channelDeliveries"]
    assert delivery["status"] == "failed"
    assert delivery["errorText"]


def test_a_slow_channel_does_not_block_other_writers(
    http: httpx.Client, receiver: Receiver, make_server: Callable[..., RunningServer]
) -> None:
    receiver.delay = 1.0
    run_id = _create(http, [{"type": "webhook", "url": receiver.url, "events": ["state.updated"]}])
    slow: list[httpx.Response] = []
    writer = threading.Thread(
        target=lambda: slow.append(http.put(f"/runs/{run_id}/state", json={"value": {"n": 1}}))
    )
    writer.start()
    time.sleep(0.15)
    with httpx.Client(base_url=make_server().url, timeout=30) as other:
        start = time.monotonic()
        usage = other.post(f"/runs/{run_id}/usage", json={"inputTokens": 1, "outputTokens": 1})
        elapsed = time.monotonic() - start
    assert usage.status_code == 200
    assert elapsed < 0.5
    writer.join(10)
    assert slow[0].status_code == 200
    receiver.delay = 0
    seqs = [e["seq"] for e in http.get(f"/runs/{run_id}").json()["events"]]
    assert seqs == [1, 2, 3]
    assert [b["type"] for b in receiver.bodies()] == ["state.updated"]


def test_gate_channels_get_gate_created_with_the_resolve_link(
    http: httpx.Client, receiver: Receiver
) -> None:
    run_id = _create(http, [])
    http.post(f"/runs/{run_id}/begin")
    begun = http.post(
        f"/runs/{run_id}/gates/begin",
        json={
            "name": "approve",
            "prompt": "Approve?",
            "channels": [{"type": "webhook", "url": receiver.url}],
        },
    ).json()
    [created] = receiver.bodies()
    assert created["type"] == "gate.created"
    gate = created["payload"]["gate"]
    assert gate["resolveUrl"] == f"/runs/{run_id}/gates/{begun['gate']['id']}/resolve"
    assert gate["resolveToken"] == begun["gate"]["resolveToken"]
    assert created["gateId"] == begun["gate"]["id"]
    # The link works, and the gate's channel hears the decision (and nothing else of the run).
    http.post(gate["resolveUrl"], json={"token": gate["resolveToken"], "decision": "approved"})
    http.put(f"/runs/{run_id}/state", json={"value": 1})
    assert [b["type"] for b in receiver.bodies()] == ["gate.created", "gate.resolved"]
    assert receiver.bodies()[1]["payload"]["gate"]["status"] == "approved"


def test_in_process_events_reach_the_channels(
    make_server: Callable[..., RunningServer], receiver: Receiver, tide: Tidebase
) -> None:
    """One store: a run created over HTTP with a channel and driven in-process; the server's
    tick delivers what the in-process worker wrote."""
    server = make_server(reconcile_seconds=0.05)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        channel = {"type": "webhook", "url": receiver.url, "events": ["run.completed"]}
        run_id = _create(http, [channel], name="inproc-chan")

        def wf(run: RunContext, data: Any) -> str:
            return str(run.step("s", lambda: "ok"))

        assert tide.run("inproc-chan", wf, run_id=run_id) == "ok"
        deadline = time.monotonic() + 10
        while not receiver.received:
            assert time.monotonic() < deadline, "never delivered"
            time.sleep(0.05)
        time.sleep(0.3)  # more ticks: delivered once
        [body] = receiver.bodies()
        assert (body["type"], body["payload"]["run"]["result"]) == ("run.completed", "ok")


def test_enqueue_and_children_take_channels(http: httpx.Client, receiver: Receiver) -> None:
    channel = {"type": "webhook", "url": receiver.url, "events": ["run.completed"]}
    first = http.post(
        "/queues/cq/enqueue", json={"workflowName": "wf", "dedupeKey": "k", "channels": [channel]}
    ).json()
    again = http.post(
        "/queues/cq/enqueue", json={"workflowName": "wf", "dedupeKey": "k", "channels": [channel]}
    ).json()
    assert again["deduplicated"] is True
    run_id = first["run"]["id"]
    assert len(http.get(f"/runs/{run_id}").json()["channels"]) == 1  # not one per enqueue
    http.post("/queues/claim", json={"queues": ["cq"]})
    http.post(f"/runs/{run_id}/complete", json={"result": 1})
    parent = _create(http, [])
    child = http.post(
        f"/runs/{parent}/children",
        json={"name": "c", "workflowName": "kid", "channels": [channel]},
    ).json()["run"]["id"]
    http.post(f"/runs/{child}/complete", json={"result": 2})
    assert [(b["type"], b["runId"]) for b in receiver.bodies()] == [
        ("run.completed", run_id),
        ("run.completed", child),
    ]
