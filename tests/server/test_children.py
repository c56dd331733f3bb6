"""Child runs over HTTP: idempotent by edge name, one child under concurrency, lineage in
metadata and on the edge, cancelled with their parent."""

from __future__ import annotations

import concurrent.futures

import httpx

from tidebase import Tidebase

from .conftest import RunningServer


def _parent(http: httpx.Client) -> str:
    run_id: str = http.post("/runs/parent-workflow", json={}).json()["run"]["id"]
    return run_id


def test_idempotent_by_edge_name(http: httpx.Client, tide: Tidebase) -> None:
    parent = _parent(http)
    payload = {"name": "shard-1", "workflowName": "child-workflow", "input": {"shard": 1}}
    first = http.post(f"/runs/{parent}/children", json=payload).json()
    assert first["created"] is True
    assert first["run"]["status"] == "pending"
    assert first["run"]["input"] == {"shard": 1}
    second = http.post(f"/runs/{parent}/children", json=payload).json()
    assert second["created"] is False
    assert second["run"]["id"] == first["run"]["id"]
    detail = http.get(f"/runs/{parent}").json()
    assert len(detail["childRuns"]) == 1
    assert len(detail["runEdges"]) == 1
    assert [c.run_id for c in tide.runs.children(parent)] == [first["run"]["id"]]
    types = [e["type"] for e in detail["events"]]
    assert types.count("run.child.created") == 1


def test_concurrent_creation_yields_one_child(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        parent = _parent(client)

    def create(_: int) -> tuple[int, str]:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            res = client.post(
                f"/runs/{parent}/children", json={"name": "shard-x", "workflowName": "child"}
            )
            return res.status_code, res.json()["run"]["id"]

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(create, range(3)))
    assert {status for status, _ in results} == {200}
    assert len({child for _, child in results}) == 1


def test_missing_parent_is_404(http: httpx.Client) -> None:
    res = http.post(
        "/runs/run_doesnotexist/children", json={"name": "orphan", "workflowName": "child"}
    )
    assert res.status_code == 404
    assert res.json()["error"] == "parent run not found"


def test_lineage_and_edge_type(http: httpx.Client) -> None:
    parent = _parent(http)
    child = http.post(
        f"/runs/{parent}/children",
        json={"name": "shard-2", "workflowName": "child", "edgeType": "fanout"},
    ).json()
    assert child["run"]["metadata"]["parentRunId"] == parent
    assert child["run"]["metadata"]["parentEdgeName"] == "shard-2"
    assert child["edge"]["edgeType"] == "fanout"
    assert child["edge"]["parentRunId"] == parent


def test_children_are_cancelled_with_their_parent(http: httpx.Client) -> None:
    parent = _parent(http)
    child = http.post(
        f"/runs/{parent}/children", json={"name": "c", "workflowName": "child"}
    ).json()["run"]
    http.post(f"/runs/{parent}/cancel", json={"reason": "stop"})
    assert http.get(f"/runs/{child['id']}").json()["run"]["status"] == "cancelled"
    late = http.post(f"/runs/{parent}/children", json={"name": "d", "workflowName": "child"})
    assert late.status_code == 409
    assert late.json()["code"] == "run_cancelled"
