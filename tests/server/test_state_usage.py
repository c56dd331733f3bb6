"""State, versions, snapshots and usage of an in-process run, read over HTTP."""

from __future__ import annotations

import concurrent.futures
from decimal import Decimal
from typing import Any

import httpx

from tidebase import RunContext, Tidebase

from .conftest import RunningServer


def _run(tide: Tidebase) -> None:
    def wf(run: RunContext, data: Any) -> str:
        run.state.set({"phase": "plan", "progress": 0})
        run.state.patch({"progress": 0.5})
        run.state.save("halfway")

        def call() -> str:
            run.usage.record(
                provider="openai", model="gpt-4o", input_tokens=10, output_tokens=5, cost_usd=0.01
            )
            return "answer"

        run.step("ask", call)
        run.state.patch({"phase": "done", "progress": 1})
        return "ok"

    tide.run("wf", wf, run_id="s1")


def test_state_and_versions(tide: Tidebase, http: httpx.Client) -> None:
    _run(tide)
    state = http.get("/runs/s1/state").json()["state"]
    assert state["value"] == {"phase": "done", "progress": 1}
    assert state["runId"] == "s1"
    versions = http.get("/runs/s1/state/versions").json()["stateVersions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[1]["value"] == {"phase": "plan", "progress": 0.5}
    assert versions[1]["label"] == "halfway"
    assert state["version"] == 3
    labeled = http.get("/runs/s1/state/versions?labeled=true").json()["stateVersions"]
    assert [v["version"] for v in labeled] == [2]
    assert http.get("/runs/s1/state/versions?stream=other").json()["stateVersions"] == []
    snapshots = http.get("/runs/s1/snapshots").json()["snapshots"]
    assert [(s["version"], s["label"]) for s in snapshots] == [(2, "halfway")]
    detail = http.get("/runs/s1").json()
    assert detail["state"]["value"] == state["value"]
    assert len(detail["stateVersions"]) == 3


def test_snapshots_are_labeled_values_of_their_own_stream(
    tide: Tidebase, http: httpx.Client
) -> None:
    """Upstream's snapshots: a value under a label in a stream of its own (``run:<id>`` by
    default, or the target's), listed with the labeled state versions; the state is unchanged."""
    _run(tide)
    snap = http.post("/runs/s1/snapshots", json={"label": "reviewed", "state": {"doc": "v1"}})
    assert snap.status_code == 200, snap.text
    snapshot = snap.json()["snapshot"]
    assert {k: snapshot[k] for k in ("streamId", "version", "label", "value", "importance")} == {
        "streamId": "s1:run:s1",
        "version": 1,
        "label": "reviewed",
        "value": {"doc": "v1"},
        "importance": "milestone",
    }
    other = http.post(
        "/runs/s1/snapshots",
        json={
            "label": "draft",
            "state": [1, 2],
            "target": {"type": "doc", "id": "d9"},
            "reason": "r",
            "metadata": {"k": 1},
            "createdBy": "ana",
        },
    ).json()["snapshot"]
    assert (other["streamId"], other["version"], other["reason"], other["createdBy"]) == (
        "s1:doc:d9",
        1,
        "r",
        "ana",
    )
    again = http.post("/runs/s1/snapshots", json={"label": "final", "state": {"doc": "v2"}})
    assert again.json()["snapshot"]["version"] == 2
    assert http.get("/runs/s1/state").json()["state"]["value"] == {"phase": "done", "progress": 1}
    listed = http.get("/runs/s1/snapshots").json()["snapshots"]
    assert [s["label"] for s in listed] == ["final", "draft", "reviewed", "halfway"]
    stream = http.get("/runs/s1/state/versions?stream=run:s1").json()["stateVersions"]
    assert [(v["version"], v["value"]) for v in stream] == [(1, {"doc": "v1"}), (2, {"doc": "v2"})]
    main = http.get("/runs/s1/state/versions?stream=run").json()["stateVersions"]
    assert [v["version"] for v in main] == [1, 2, 3]
    events = [e for e in tide.runs.events("s1") if e.type == "snapshot.created"]
    assert [e.payload["stateVersion"]["label"] for e in events] == ["reviewed", "draft", "final"]
    missing = http.post("/runs/nope/snapshots", json={"label": "x", "state": 1})
    assert missing.status_code == 404
    unlabeled = http.post("/runs/s1/snapshots", json={"state": 1})
    assert (unlabeled.status_code, unlabeled.json()["code"]) == (400, "invalid_request")


def test_state_of_a_run_without_state(http: httpx.Client) -> None:
    run = http.post("/runs/wf", json={}).json()["run"]
    assert http.get(f"/runs/{run['id']}/state").json() == {"state": None}


def test_usage(tide: Tidebase, http: httpx.Client) -> None:
    _run(tide)
    body = http.get("/runs/s1/usage").json()
    [record] = body["usage"]
    assert record["provider"] == "openai"
    assert record["model"] == "gpt-4o"
    assert record["inputTokens"] == 10
    assert record["outputTokens"] == 5
    assert record["totalTokens"] == 15
    assert record["costUsd"] == 0.01
    assert record["stepName"] == "ask"
    assert record["attempt"] == 1
    assert body["summary"]["totalTokens"] == 15
    assert body["summary"]["costUsd"] == 0.01
    assert body["summary"]["byModel"][0]["model"] == "gpt-4o"
    assert http.get("/runs/s1").json()["usage"] == body["usage"]


def test_put_replaces_patch_merges_versions_are_monotonic(
    http: httpx.Client, tide: Tidebase
) -> None:
    run_id = http.post("/runs/wf", json={}).json()["run"]["id"]
    put = http.put(f"/runs/{run_id}/state", json={"value": {"phase": "draft", "n": 1}})
    assert put.status_code == 200
    assert put.json()["state"]["version"] == 1
    patch = http.patch(f"/runs/{run_id}/state", json={"value": {"n": 2}}).json()["state"]
    assert patch == {**patch, "version": 2, "value": {"phase": "draft", "n": 2}}
    again = http.put(f"/runs/{run_id}/state", json={"value": {"phase": "final"}}).json()["state"]
    assert (again["version"], again["value"]) == (3, {"phase": "final"})
    versions = http.get(f"/runs/{run_id}/state/versions?stream=run").json()["stateVersions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[-1]["value"] == {"phase": "final"}
    assert tide.runs.state(run_id) == {"phase": "final"}  # one store
    removed = http.patch(f"/runs/{run_id}/state", json={"value": {"phase": None}}).json()
    assert removed["state"]["value"] == {}


def test_save_labels_the_current_value(http: httpx.Client) -> None:
    run_id = http.post("/runs/wf", json={}).json()["run"]["id"]
    assert http.post(f"/runs/{run_id}/state/save", json={"label": "x"}).status_code == 404
    http.put(f"/runs/{run_id}/state", json={"value": {"n": 7}})
    saved = http.post(f"/runs/{run_id}/state/save", json={"label": "pre-publish"})
    assert saved.status_code == 200
    version = saved.json()["stateVersion"]
    assert version["label"] == "pre-publish"
    assert version["importance"] == "milestone"
    assert version["value"] == {"n": 7}
    labeled = http.get(f"/runs/{run_id}/state/versions?labeled=true").json()["stateVersions"]
    assert len(labeled) == 1
    assert http.get(f"/runs/{run_id}/state").json()["state"]["version"] == 1  # value unchanged


def test_state_of_a_finished_run_is_final(http: httpx.Client) -> None:
    run_id = http.post("/runs/wf", json={}).json()["run"]["id"]
    http.post(f"/runs/{run_id}/cancel", json={})
    res = http.put(f"/runs/{run_id}/state", json={"value": {"n": 1}})
    assert res.status_code == 409
    assert res.json()["code"] == "run_cancelled"
    assert http.put("/runs/nope/state", json={"value": 1}).status_code == 404
    bad = http.patch(f"/runs/{run_id}/state", json={"value": [1]})
    assert bad.status_code == 400
    noted = http.put(f"/runs/{run_id}/state", json={"value": 1, "reason": "why"})
    assert noted.status_code == 409  # a reason changes nothing: the run is finished


def test_lifecycle_log_is_ordered_and_gap_free(http: httpx.Client) -> None:
    run_id = http.post("/runs/wf", json={}).json()["run"]["id"]
    http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w1"})
    http.put(f"/runs/{run_id}/state", json={"value": {"n": 1}})
    begun = http.post(
        f"/runs/{run_id}/steps/begin", json={"name": "s1", "inputHash": "h1", "leaseOwner": "w1"}
    ).json()
    http.post(
        f"/runs/{run_id}/steps/{begun['step']['id']}/complete",
        json={"leaseOwner": "w1", "output": "done"},
    )
    http.post(f"/runs/{run_id}/complete", json={"result": "done"})
    events = http.get(f"/runs/{run_id}").json()["events"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e["type"] for e in events] == [
        "run.created",
        "run.started",
        "state.updated",
        "step.started",
        "step.completed",
        "run.completed",
    ]


def test_concurrent_writers_never_drop_or_duplicate_seqs(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        run_id = client.post("/runs/wf", json={}).json()["run"]["id"]

    def write(n: int) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            if n % 2:
                return client.put(f"/runs/{run_id}/state", json={"value": {"n": n}}).status_code
            body = {"kind": "llm", "inputTokens": n, "outputTokens": n}
            return client.post(f"/runs/{run_id}/usage", json=body).status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(write, range(8))) == {200}
    with httpx.Client(base_url=server.url) as client:
        events = client.get(f"/runs/{run_id}").json()["events"]
    assert [e["seq"] for e in events] == list(range(1, 10))


def test_record_usage(http: httpx.Client, tide: Tidebase) -> None:
    run_id = http.post("/runs/wf", json={}).json()["run"]["id"]
    derived = http.post(
        f"/runs/{run_id}/usage",
        json={"kind": "llm", "provider": "anthropic", "inputTokens": 100, "outputTokens": 50},
    ).json()["usage"]
    assert derived["totalTokens"] == 150
    explicit = http.post(
        f"/runs/{run_id}/usage",
        json={"kind": "llm", "inputTokens": 100, "outputTokens": 50, "totalTokens": 999},
    ).json()["usage"]
    assert explicit["totalTokens"] == 999
    negative = http.post(f"/runs/{run_id}/usage", json={"inputTokens": -5})
    assert negative.status_code == 400
    assert negative.json()["error"] == "invalid request body"
    assert [r.total_tokens for r in tide.usage.records(run_id)] == [150, 999]
    assert http.post("/runs/nope/usage", json={}).status_code == 404


def test_usage_counted_in_a_unit_is_recorded_and_listed(http: httpx.Client, tide: Tidebase) -> None:
    run_id = http.post("/runs/wf", json={}).json()["run"]["id"]
    body = {"kind": "search", "provider": "serpapi", "quantity": 3, "unit": "queries"}
    recorded = http.post(f"/runs/{run_id}/usage", json=body)
    assert recorded.status_code == 200, recorded.text
    assert (recorded.json()["usage"]["quantity"], recorded.json()["usage"]["unit"]) == (
        3,
        "queries",
    )
    (listed,) = http.get(f"/runs/{run_id}/usage").json()["usage"]
    assert (listed["kind"], listed["quantity"], listed["unit"]) == ("search", 3, "queries")
    (row,) = tide.usage.records(run_id)
    assert (row.quantity, row.unit) == (Decimal(3), "queries")
    negative = http.post(f"/runs/{run_id}/usage", json={"quantity": -1, "unit": "queries"})
    assert negative.status_code == 400
    assert negative.json()["issues"][0]["path"] == ["quantity"]
    assert len(tide.usage.records(run_id)) == 1  # nothing of the refused one


def test_a_state_write_says_why_how_much_it_matters_and_who_wrote_it(
    http: httpx.Client, tide: Tidebase
) -> None:
    run_id = http.post("/runs/wf", json={}).json()["run"]["id"]
    noted = {
        "value": {"draft": 1},
        "reason": "first draft",
        "importance": "checkpoint",
        "metadata": {"source": "editor"},
        "createdBy": "ana",
    }
    assert http.put(f"/runs/{run_id}/state", json=noted).status_code == 200
    patched = {"value": {"draft": 2}, "reason": "review", "label": "reviewed"}
    assert http.patch(f"/runs/{run_id}/state", json=patched).status_code == 200
    assert http.put(f"/runs/{run_id}/state", json={"value": {"draft": 3}}).status_code == 200
    versions = http.get(f"/runs/{run_id}/state/versions").json()["stateVersions"]
    described = [
        (v["reason"], v["importance"], v["metadata"], v["createdBy"], v["label"]) for v in versions
    ]
    assert described == [
        ("first draft", "checkpoint", {"source": "editor"}, "ana", None),
        ("review", "milestone", {}, None, "reviewed"),  # labeled, no importance given
        (None, "normal", {}, None, None),
    ]
    first = tide.runs.state_versions(run_id)[0]
    assert (first.reason, first.importance, first.metadata, first.created_by) == (
        "first draft",
        "checkpoint",
        {"source": "editor"},
        "ana",
    )
    bad = http.put(f"/runs/{run_id}/state", json={"value": {}, "importance": "urgent"})
    assert bad.status_code == 400 and bad.json()["issues"][0]["path"] == ["importance"]
    assert len(http.get(f"/runs/{run_id}/state/versions").json()["stateVersions"]) == 3
