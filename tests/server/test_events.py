"""``GET /runs/{id}/events`` as SSE: backlog then live, id = seq, ``?after=`` and
``Last-Event-ID``, ends after the terminal event; live events come from any process."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from tidebase import RunContext, Tidebase

from .conftest import RunningServer, sse_events


def test_backlog_then_end_after_terminal_event(tide: Tidebase, http: httpx.Client) -> None:
    tide.run("wf", lambda r, i: r.step("a", lambda: 1), run_id="r1")
    with http.stream("GET", "/runs/r1/events") as res:
        assert res.status_code == 200
        assert res.headers["content-type"].startswith("text/event-stream")
        assert res.headers["cache-control"] == "no-cache"
        got = list(sse_events(res))  # ends by itself: run.completed is terminal
    assert [eid for eid, _ in got] == [e["seq"] for _, e in got] == [1, 2, 3]
    assert [e["type"] for _, e in got] == ["run.started", "step.completed", "run.completed"]
    assert all(e["runId"] == "r1" and e["id"] == e["seq"] for _, e in got)
    assert got[1][1]["payload"]["step"] == "a"


def test_after_and_last_event_id(tide: Tidebase, http: httpx.Client) -> None:
    tide.run("wf", lambda r, i: r.step("a", lambda: 1), run_id="r2")
    with http.stream("GET", "/runs/r2/events?after=1") as res:
        assert [eid for eid, _ in sse_events(res)] == [2, 3]
    with http.stream("GET", "/runs/r2/events?after=0", headers={"last-event-id": "2"}) as res:
        assert [eid for eid, _ in sse_events(res)] == [3]  # a reconnect's header wins


@pytest.mark.parametrize("query", ["?after=-1", "?after=x"])
def test_bad_after_is_400(http: httpx.Client, query: str) -> None:
    run = http.post("/runs/wf", json={}).json()["run"]
    res = http.get(f"/runs/{run['id']}/events{query}")
    assert res.status_code == 400
    assert res.json()["code"] == "invalid_request"


def test_live_events_from_another_process_then_cancel_ends_the_stream(
    tide: Tidebase, server: RunningServer
) -> None:
    """Events written by the in-process client (another connection, as another process would)
    arrive live through LISTEN/NOTIFY; the cancel ends the stream."""
    created = httpx.post(f"{server.url}/runs/wf", json={}).json()["run"]
    run_id = created["id"]
    received: list[tuple[int, dict[str, Any]]] = []
    first = threading.Event()

    def watch() -> None:
        with (
            httpx.Client(base_url=server.url, timeout=30) as client,
            client.stream("GET", f"/runs/{run_id}/events") as res,
        ):
            for item in sse_events(res):
                received.append(item)
                first.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert first.wait(30)  # the backlog (run.created) arrived: the stream is live now
    for n in range(5):
        tide.events.append(run_id, "custom.progress", {"n": n})
    tide.runs.cancel(run_id, reason="enough")
    watcher.join(30)
    assert not watcher.is_alive(), "the stream did not end after run.cancelled"
    assert [eid for eid, _ in received] == list(range(1, 8))
    types = [e["type"] for _, e in received]
    assert types == ["run.created", *["custom.progress"] * 5, "run.cancelled"]
    assert [e["payload"]["n"] for _, e in received[1:6]] == [0, 1, 2, 3, 4]


def test_live_stream_of_an_in_process_run(tide: Tidebase, server: RunningServer) -> None:
    """Subscribe before the run exists in its final form: open at a gate, then continue."""
    opened = threading.Event()

    def wf(run: RunContext, data: Any) -> str:
        run.step("one", lambda: 1)
        opened.set()
        decision = run.gate("go", "Continue?", timeout=60)
        run.step("two", lambda: 2)
        return decision.decision.value

    outcome: list[object] = []
    worker = threading.Thread(target=lambda: outcome.append(tide.run("wf", wf, run_id="r-wf")))
    worker.start()
    assert opened.wait(30)
    received: list[dict[str, Any]] = []
    with (
        httpx.Client(base_url=server.url, timeout=30) as client,
        client.stream("GET", "/runs/r-wf/events") as res,
    ):
        for _, event in sse_events(res):
            received.append(event)
            if event["type"] == "gate.opened":
                tide.gates.resolve("r-wf", "go", "approved", actor="test")
    worker.join(30)
    assert outcome == ["approved"]
    types = [e["type"] for e in received]
    assert types[0] == "run.started"
    assert types[-1] == "run.completed"
    assert "gate.resolved" in types
    assert [e["seq"] for e in received] == list(range(1, len(received) + 1))
