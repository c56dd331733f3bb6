"""Queues over HTTP (upstream's queues tests, in this project's words): enqueue → claim →
complete, dedupe exact under concurrency, delayed runs, exclusive claims, caps across claims,
retries with backoff then max_retries, the reconciler requeueing a dead worker's run, stats,
config; and the same rows seen by the in-process API."""

from __future__ import annotations

import concurrent.futures
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tidebase import RunContext, Tidebase
from tidebase.errors import RunLocked

from .conftest import RunningServer


def _q() -> str:
    return f"q-{uuid.uuid4().hex[:8]}"


def _enqueue(http: httpx.Client, queue: str, **body: Any) -> dict[str, Any]:
    res = http.post(f"/queues/{queue}/enqueue", json={"workflowName": "wf", **body})
    assert res.status_code == 200, res.text
    answer: dict[str, Any] = res.json()
    return answer


def _claim(http: httpx.Client, *queues: str, **body: Any) -> dict[str, Any]:
    res = http.post("/queues/claim", json={"queues": list(queues), **body})
    assert res.status_code == 200, res.text
    answer: dict[str, Any] = res.json()
    return answer


def _wait(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def _status(http: httpx.Client, run_id: str) -> str:
    status: str = http.get(f"/runs/{run_id}").json()["run"]["status"]
    return status


@pytest.fixture
def reconciling(make_server: Callable[..., RunningServer]) -> Iterator[httpx.Client]:
    """A server ticking its reconciler every 0.1 s, with 0.5 s protocol leases."""
    server = make_server(lease_seconds=0.5, reconcile_seconds=0.1)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_enqueue_claim_complete_lifecycle(http: httpx.Client, tide: Tidebase) -> None:
    queue = _q()
    enq = _enqueue(http, queue, input={"n": 1}, priority=3, maxAttempts=2, dedupeKey="k")
    run = enq["run"]
    assert enq["deduplicated"] is False
    assert run["status"] == "queued"
    assert run["queue"] == queue
    assert (run["dedupeKey"], run["priority"], run["maxAttempts"]) == ("k", 3, 2)
    assert run["input"] == {"n": 1}
    assert datetime.fromisoformat(run["runAt"]) <= datetime.now(UTC)
    assert tide.runs.get(run["id"]).status == "queued"  # one store

    claim = _claim(http, queue, leaseOwner="w1")
    assert claim["leaseOwner"] == "w1"
    [claimed] = claim["runs"]
    assert (claimed["id"], claimed["status"], claimed["attempt"]) == (run["id"], "running", 1)
    assert claimed["leaseOwner"] == "w1"
    assert claimed["leaseExpiresAt"] is not None
    # The claim is a lease: heartbeat as after runs/begin; another worker is refused.
    beat = http.post(f"/runs/{run['id']}/heartbeat", json={"leaseOwner": "w1"})
    assert beat.status_code == 200, beat.text
    other = http.post(f"/runs/{run['id']}/begin", headers={"x-tidebase-worker": "w2"})
    assert (other.status_code, other.json()["leaseOwner"]) == (409, "w1")
    with pytest.raises(RunLocked):
        tide.run("wf", lambda r, i: 1, run_id=run["id"])

    done = http.post(f"/runs/{run['id']}/complete", json={"result": 1})
    assert done.json()["run"]["status"] == "completed"
    assert tide.runs.get(run["id"]).status == "completed"
    types = [e["type"] for e in http.get(f"/runs/{run['id']}").json()["events"]]
    assert types == ["run.enqueued", "run.claimed", "run.completed"]


def test_dedupe_is_exact_under_concurrent_enqueues(http: httpx.Client) -> None:
    queue = _q()
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: _enqueue(http, queue, dedupeKey="once"), range(6)))
    assert len({r["run"]["id"] for r in results}) == 1
    assert sum(r["deduplicated"] for r in results) == 5
    # A run that finished frees the key.
    [claimed] = _claim(http, queue)["runs"]
    http.post(f"/runs/{claimed['id']}/complete", json={})
    again = _enqueue(http, queue, dedupeKey="once")
    assert again["deduplicated"] is False
    assert again["run"]["id"] != claimed["id"]


def test_delayed_and_future_runs_are_not_claimed(http: httpx.Client) -> None:
    queue = _q()
    delayed = _enqueue(http, queue, delayMs=60_000)["run"]
    assert datetime.fromisoformat(delayed["runAt"]) > datetime.now(UTC)
    _enqueue(http, queue, runAt="2999-01-01T00:00:00Z")
    assert _claim(http, queue)["runs"] == []
    soon = _enqueue(http, queue, delayMs=300)["run"]
    assert _claim(http, queue)["runs"] == []
    time.sleep(0.4)
    assert [r["id"] for r in _claim(http, queue)["runs"]] == [soon["id"]]


def test_concurrent_claimers_never_share_a_run(http: httpx.Client) -> None:
    queue = _q()
    for i in range(6):
        _enqueue(http, queue, input={"i": i})
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        a, b = pool.map(lambda owner: _claim(http, queue, leaseOwner=owner, limit=3), ["wa", "wb"])
    ids_a = [r["id"] for r in a["runs"]]
    ids_b = [r["id"] for r in b["runs"]]
    assert len(ids_a) + len(ids_b) == 6
    assert len(set(ids_a) | set(ids_b)) == 6
    assert all(r["leaseOwner"] == "wa" for r in a["runs"])


def test_priority_then_age(http: httpx.Client) -> None:
    queue = _q()
    low = _enqueue(http, queue, input={"p": 0})["run"]["id"]
    high = _enqueue(http, queue, input={"p": 5}, priority=5)["run"]["id"]
    assert [r["id"] for r in _claim(http, queue, limit=2)["runs"]] == [high, low]


def test_concurrency_cap_holds_across_claims(http: httpx.Client) -> None:
    queue = _q()
    assert http.put(f"/queues/{queue}/config", json={"concurrency": 1}).status_code == 200
    _enqueue(http, queue, input={"i": 1})
    _enqueue(http, queue, input={"i": 2})
    first = _claim(http, queue, limit=5)["runs"]
    assert len(first) == 1
    assert _claim(http, queue, limit=5)["runs"] == []
    http.post(f"/runs/{first[0]['id']}/complete", json={})
    assert len(_claim(http, queue, limit=5)["runs"]) == 1


def test_rate_cap_per_minute(http: httpx.Client) -> None:
    queue = _q()
    http.put(f"/queues/{queue}/config", json={"ratePerMinute": 2})
    for i in range(4):
        _enqueue(http, queue, input={"i": i})
    assert len(_claim(http, queue, limit=10)["runs"]) == 2
    assert _claim(http, queue, limit=10)["runs"] == []


def test_failed_attempt_requeues_with_backoff_then_max_retries(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEBASE_RETRY_BASE_SECONDS", "0.3")  # 5 s upstream; same doubling
    queue = _q()
    run_id = _enqueue(http, queue, maxAttempts=2)["run"]["id"]
    assert len(_claim(http, queue)["runs"]) == 1
    before = datetime.now(UTC)
    fail1 = http.post(f"/runs/{run_id}/fail", json={"error": {"message": "boom"}}).json()
    assert fail1["requeued"] is True
    assert fail1["run"]["status"] == "queued"
    assert fail1["run"]["error"] == {"message": "boom"}
    assert datetime.fromisoformat(fail1["run"]["runAt"]) > before
    assert _claim(http, queue)["runs"] == []  # not before the backoff
    _wait(lambda: len(_claim(http, queue, leaseOwner="w2")["runs"]) == 1)
    fail2 = http.post(f"/runs/{run_id}/fail", json={"error": {"message": "boom"}}).json()
    assert fail2["requeued"] is False
    assert fail2["run"]["status"] == "failed"
    assert fail2["run"]["failureClass"] == "max_retries"
    assert fail2["run"]["attempt"] == 2
    types = [e["type"] for e in http.get(f"/runs/{run_id}").json()["events"]]
    assert types == ["run.enqueued", "run.claimed", "run.requeued", "run.claimed", "run.failed"]


def test_queue_events_carry_upstreams_names(http: httpx.Client, tide: Tidebase) -> None:
    """run.enqueued, run.claimed, run.requeued (a failed attempt put back), as upstream's log
    (and its tests) name them; the usage summary still tells the failed attempt from a crash."""
    queue = _q()
    run_id = _enqueue(http, queue, maxAttempts=2)["run"]["id"]
    assert len(_claim(http, queue, leaseOwner="w-7")["runs"]) == 1
    usage = {"kind": "llm", "model": "m", "inputTokens": 1, "outputTokens": 1}
    assert http.post(f"/runs/{run_id}/usage", json=usage).status_code == 200
    assert http.post(f"/runs/{run_id}/fail", json={"error": {"message": "boom"}}).json()["requeued"]
    events = http.get(f"/runs/{run_id}").json()["events"]
    assert [e["type"] for e in events] == [
        "run.enqueued",
        "run.claimed",
        "usage.recorded",
        "run.requeued",
    ]
    assert events[0]["payload"]["queue"] == queue
    assert "runAt" in events[0]["payload"]
    assert (events[1]["payload"]["queue"], events[1]["payload"]["leaseOwner"]) == (queue, "w-7")
    requeued = events[3]["payload"]
    assert requeued["error"] == {"message": "boom"}
    assert (requeued["attempt"], requeued["maxAttempts"]) == (1, 2)
    run_at = http.get(f"/runs/{run_id}").json()["run"]["runAt"]
    assert requeued["nextRunAt"] == run_at  # the backoff's end, written as the protocol does
    assert events[0]["payload"]["runAt"].endswith("Z")
    assert [(a.attempt, a.outcome) for a in tide.usage.summary(run_id).by_attempt] == [
        (1, "failed")
    ]


def test_a_plain_run_fail_is_not_requeued(http: httpx.Client) -> None:
    run_id = http.post("/runs/plain", json={}).json()["run"]["id"]
    http.post(f"/runs/{run_id}/begin")
    answer = http.post(f"/runs/{run_id}/fail", json={"error": {"message": "x"}}).json()
    assert (answer["requeued"], answer["run"]["status"]) == (False, "failed")


def test_reconciler_requeues_a_dead_workers_run_then_gives_up(
    reconciling: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claimed run whose worker stops heartbeating goes back to its queue when the lease
    lapses, after the retry backoff; each claim over HTTP is an attempt (upstream's rules), so
    once maxAttempts claims lapsed the run fails as max_retries."""
    monkeypatch.setenv("TIDEBASE_RETRY_BASE_SECONDS", "1")
    http = reconciling
    queue = _q()
    run_id = _enqueue(http, queue, maxAttempts=2)["run"]["id"]
    for attempt in (1, 2):
        owner = f"dead-{attempt}"
        _wait(lambda owner=owner: len(_claim(http, queue, leaseOwner=owner)["runs"]) == 1)
        run = http.get(f"/runs/{run_id}").json()["run"]
        assert (run["attempt"], run["leaseOwner"]) == (attempt, f"dead-{attempt}")
        _wait(lambda: _status(http, run_id) != "running")
        if attempt == 1:
            assert _status(http, run_id) == "queued"
            assert _claim(http, queue, leaseOwner="eager")["runs"] == [], "claimed in backoff"
            detail = http.get(f"/runs/{run_id}").json()
            requeued_at = datetime.fromisoformat(detail["events"][-1]["createdAt"])
            backoff = datetime.fromisoformat(detail["run"]["runAt"]) - requeued_at
            assert 0.9 <= backoff.total_seconds() <= 1.5, backoff
    run = http.get(f"/runs/{run_id}").json()["run"]
    assert (run["status"], run["failureClass"], run["attempt"]) == ("failed", "max_retries", 2)
    events = http.get(f"/runs/{run_id}").json()["events"]
    requeues = [e["payload"] for e in events if e["type"] == "run.requeued"]
    assert [(p["reason"], p["attempt"], p["maxAttempts"]) for p in requeues] == [
        ("lease_expired", 1, 2)
    ]
    assert events[-1]["type"] == "run.failed"


def test_heartbeats_keep_a_claimed_run(reconciling: httpx.Client) -> None:
    http = reconciling
    queue = _q()
    run_id = _enqueue(http, queue)["run"]["id"]
    _claim(http, queue, leaseOwner="alive")
    for _ in range(8):  # 1.6 s: three lease lengths
        time.sleep(0.2)
        res = http.post(f"/runs/{run_id}/heartbeat", json={"leaseOwner": "alive"})
        assert res.status_code == 200, res.text
    assert _status(http, run_id) == "running"


def test_deadline_cancels(reconciling: httpx.Client) -> None:
    queue = _q()
    run = _enqueue(reconciling, queue, deadlineMs=200, delayMs=60_000)["run"]
    assert run["deadlineAt"] is not None
    _wait(lambda: _status(reconciling, run["id"]) == "cancelled")
    assert reconciling.get(f"/runs/{run['id']}").json()["run"]["cancelReason"] == "deadline"


def test_cancel_a_queued_run(http: httpx.Client) -> None:
    queue = _q()
    run_id = _enqueue(http, queue, dedupeKey="c")["run"]["id"]
    cancelled = http.post(f"/runs/{run_id}/cancel", json={"reason": "no", "actor": "t"}).json()
    assert cancelled["run"]["status"] == "cancelled"
    assert _claim(http, queue)["runs"] == []
    assert _enqueue(http, queue, dedupeKey="c")["deduplicated"] is False  # the key is free


def test_queue_stats_and_config(http: httpx.Client) -> None:
    queue = _q()
    for _ in range(3):
        _enqueue(http, queue)
    [claimed] = _claim(http, queue)["runs"]
    http.post(f"/runs/{claimed['id']}/complete", json={})
    [running] = _claim(http, queue)["runs"]
    assert running
    mine = next(q for q in http.get("/queues").json()["queues"] if q["name"] == queue)
    assert mine == {
        "name": queue,
        "queued": 1,
        "running": 1,
        "failed": 0,
        "completed": 1,
        "cancelled": 0,
        "config": None,
    }
    conf = http.put(f"/queues/{queue}/config", json={"concurrency": 2, "ratePerMinute": 10})
    assert conf.json() == {
        "config": {"name": queue, "concurrency": 2, "ratePerMinute": 10, "invokeUrl": None}
    }
    # A field left out keeps its value, and so does null (upstream coalesces it).
    conf = http.put(f"/queues/{queue}/config", json={"ratePerMinute": None, "concurrency": 3})
    assert conf.json()["config"] == {
        "name": queue,
        "concurrency": 3,
        "ratePerMinute": 10,
        "invokeUrl": None,
    }
    conf = http.put(f"/queues/{queue}/config", json={"concurrency": None})
    assert conf.json()["config"]["concurrency"] == 3
    mine = next(q for q in http.get("/queues").json()["queues"] if q["name"] == queue)
    assert mine["config"]["concurrency"] == 3
    empty = _q()
    http.put(f"/queues/{empty}/config", json={"concurrency": 1})
    listed = next(q for q in http.get("/queues").json()["queues"] if q["name"] == empty)
    assert listed["queued"] == 0 and listed["config"]["concurrency"] == 1


def test_queues_bad_input(http: httpx.Client) -> None:
    queue = _q()
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        ("POST", f"/queues/{queue}/enqueue", {}, 400, "workflowName"),
        ("POST", f"/queues/{queue}/enqueue", {"workflowName": "wf", "delayMs": -1}, 400, "delayMs"),
        ("POST", f"/queues/{queue}/enqueue", {"workflowName": "wf", "runAt": "soon"}, 400, "runAt"),
        (
            "POST",
            f"/queues/{queue}/enqueue",
            {"workflowName": "wf", "runAt": "2030-01-01T00:00:00Z", "delayMs": 5},
            400,
            "runAt",
        ),
        ("POST", f"/queues/{queue}/enqueue", {"workflowName": "wf", "maxAttempts": 0}, 400, ""),
        (
            "POST",
            f"/queues/{queue}/enqueue",
            {"workflowName": "wf", "recoveryWebhook": "not a url"},
            400,
            "recoveryWebhook",
        ),
        (
            "POST",
            f"/queues/{queue}/enqueue",
            {"workflowName": "wf", "channels": [{"type": "email", "url": "http://x"}]},
            400,
            "channels",
        ),
        (
            "POST",
            f"/queues/{queue}/enqueue",
            {"workflowName": "wf", "channels": [{"type": "webhook", "url": "nope"}]},
            400,
            "channels.0.url",
        ),
        ("POST", "/queues/claim", {"queues": []}, 400, "queues"),
        ("POST", "/queues/claim", {"queues": [queue], "limit": 101}, 400, "limit"),
        ("PUT", f"/queues/{queue}/config", {"concurrency": 0}, 400, "concurrency"),
        ("PUT", f"/queues/{queue}/config", {"invokeUrl": "ftp://x"}, 400, "invokeUrl"),
    ]
    for method, path, body, status, field in cases:
        res = http.request(method, path, json=body)
        assert res.status_code == status, (path, body, res.text)
        assert field in res.text, (body, res.text)
        assert res.json()["code"] in ("invalid_request", "unsupported")
    # Nothing was half-written by a refused request.
    assert not any(q["name"] == queue for q in http.get("/queues").json()["queues"])


def test_http_enqueued_run_is_worked_in_process(http: httpx.Client, tide: Tidebase) -> None:
    """One store: a run enqueued over HTTP is executed by an in-process worker, and a run
    enqueued in-process is claimed over HTTP."""
    queue = _q()
    name = f"double-{queue}"

    @tide.workflow(name)
    def double(run: RunContext, data: Any) -> int:
        return int(run.step("double", lambda: data["n"] * 2))

    run_id = http.post(
        f"/queues/{queue}/enqueue", json={"workflowName": name, "input": {"n": 21}}
    ).json()["run"]["id"]
    stop = threading.Event()
    worker = threading.Thread(target=lambda: tide.work([queue], stop=stop))
    worker.start()
    try:
        _wait(lambda: _status(http, run_id) == "completed")
    finally:
        stop.set()
        worker.join(30)
    assert http.get(f"/runs/{run_id}").json()["run"]["result"] == 42

    other = tide.enqueue("elsewhere", queue=queue, input={"n": 1}).run.run_id
    [claimed] = _claim(http, queue, leaseOwner="remote")["runs"]
    assert claimed["id"] == other
    assert tide.runs.get(other).status == "running"


def test_openapi_lists_the_queue_routes(http: httpx.Client) -> None:
    paths = http.get("/openapi.json").json()["paths"]
    assert "requestBody" in paths["/queues/{queue}/enqueue"]["post"]
    assert "requestBody" in paths["/queues/claim"]["post"]
    assert "get" in paths["/queues"]
    assert "put" in paths["/queues/{queue}/config"]
    assert {"put", "delete"} <= set(paths["/schedules/{name}"])
    assert "get" in paths["/schedules"]
    assert "409" in paths["/runs/{runId}/recover"]["post"]["responses"]


def test_queue_and_schedule_routes_need_the_api_key(
    make_server: Callable[..., RunningServer],
) -> None:
    from .conftest import KEY

    server = make_server(api_key=KEY)
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        for method, path, body in [
            ("POST", "/queues/q/enqueue", {"workflowName": "wf"}),
            ("POST", "/queues/claim", {"queues": ["q"]}),
            ("GET", "/queues", None),
            ("PUT", "/queues/q/config", {"concurrency": 1}),
            ("PUT", "/schedules/s", {"cron": "0 9 * * *", "workflowName": "wf"}),
            ("GET", "/schedules", None),
            ("DELETE", "/schedules/s", None),
            ("POST", "/runs/r/recover", {}),
        ]:
            res = anon.request(method, path, json=body)
            assert (res.status_code, res.json()["code"]) == (401, "unauthorized"), path
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server.url, timeout=30, headers=headers) as http:
        assert _enqueue(http, "q")["run"]["status"] == "queued"
        assert [q["name"] for q in http.get("/queues").json()["queues"]] == ["q"]
