"""Gates over HTTP: read (token only for authenticated readers), resolve exactly once with
the gate's token or the API key; the in-process worker continues with the decision."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tidebase import RunContext, Tidebase
from tidebase.errors import GatePending

from .conftest import KEY, RunningServer


def _park(tide: Tidebase, run_id: str, name: str = "approve") -> Callable[[RunContext, Any], Any]:
    """Run a workflow that parks at gate ``name`` (wait=False); returns the workflow."""

    def wf(run: RunContext, data: Any) -> Any:
        run.step("prepare", lambda: "ready")
        decision = run.gate(name, "Send it?", data={"amount": 100}, wait=False)
        return {"decision": decision.decision.value, "actor": decision.actor}

    with pytest.raises(GatePending):
        tide.run("wf", wf, run_id=run_id)
    return wf


def _gate_id(http: httpx.Client, run_id: str) -> str:
    [gate] = http.get(f"/runs/{run_id}").json()["gates"]
    gate_id: str = gate["id"]
    return gate_id


def test_get_gate_hides_the_token_from_unauthenticated_readers(
    tide: Tidebase, http: httpx.Client
) -> None:
    _park(tide, "g1")
    gate_id = _gate_id(http, "g1")
    res = http.get(f"/runs/g1/gates/{gate_id}")
    assert res.status_code == 200
    body = res.json()
    assert body["runStatus"] == "waiting"
    gate = body["gate"]
    assert gate["id"] == gate_id
    assert gate["runId"] == "g1"
    assert gate["name"] == "approve"
    assert gate["prompt"] == "Send it?"
    assert gate["data"] == {"amount": 100}
    assert gate["status"] == "pending"
    assert gate["decision"] is None
    assert gate["resolveToken"] is None  # no API key: nobody is authenticated


def test_resolve_with_token_exactly_once_then_the_worker_continues(
    tide: Tidebase, http: httpx.Client
) -> None:
    wf = _park(tide, "g2")
    gate_id = _gate_id(http, "g2")
    token = tide.gates.get("g2", "approve").token

    forged = http.post(
        f"/runs/g2/gates/{gate_id}/resolve", json={"token": "not-the-token", "decision": "approved"}
    )
    assert forged.status_code == 409
    assert forged.json()["code"] == "invalid_token"

    real = http.post(
        f"/runs/g2/gates/{gate_id}/resolve",
        json={"token": token, "decision": "approved", "actor": "yao", "payload": {"note": "ok"}},
    )
    assert real.status_code == 200
    gate = real.json()["gate"]
    assert gate["status"] == "approved"
    assert gate["decision"] == "approved"
    assert gate["actor"] == "yao"
    assert gate["decisionPayload"] == {"note": "ok"}
    assert gate["resolvedAt"] is not None

    again = http.post(
        f"/runs/g2/gates/{gate_id}/resolve", json={"token": token, "decision": "rejected"}
    )
    assert again.status_code == 409
    assert again.json()["code"] == "gate_already_resolved"
    assert http.get(f"/runs/g2/gates/{gate_id}").json()["gate"]["decision"] == "approved"

    assert tide.run("wf", wf, run_id="g2") == {"decision": "approved", "actor": "yao"}


def test_concurrent_conflicting_decisions_exactly_one_wins(
    tide: Tidebase, server: RunningServer
) -> None:
    _park(tide, "g3")
    token = tide.gates.get("g3", "approve").token
    with httpx.Client(base_url=server.url) as client:
        gate_id = _gate_id(client, "g3")

    def resolve(decision: str) -> int:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return client.post(
                f"/runs/g3/gates/{gate_id}/resolve", json={"token": token, "decision": decision}
            ).status_code

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(resolve, ["approved", "rejected"] * 2))
    assert statuses == [200, 409, 409, 409]


def test_unauthenticated_resolve_needs_the_token(tide: Tidebase, http: httpx.Client) -> None:
    _park(tide, "g4")
    gate_id = _gate_id(http, "g4")
    res = http.post(f"/runs/g4/gates/{gate_id}/resolve", json={"decision": "approved"})
    assert res.status_code == 400
    assert res.json()["issues"][0]["path"] == ["token"]
    res = http.post(f"/runs/g4/gates/{gate_id}/resolve", json={"token": "t", "decision": "maybe"})
    assert res.status_code == 400
    res = http.post(
        f"/runs/g4/gates/{gate_id}/resolve", json={"token": "t", "decision": "canceled"}
    )
    assert res.status_code == 422
    assert res.json()["code"] == "unsupported"
    assert tide.gates.get("g4", "approve").status == "pending"


def test_api_key_resolves_without_token_and_reads_the_token(
    tide: Tidebase, make_server: Callable[..., RunningServer]
) -> None:
    server = make_server(api_key=KEY)
    wf = _park(tide, "g5")
    auth = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=server.url, headers=auth) as client:
        gate_id = _gate_id(client, "g5")
        gate = client.get(f"/runs/g5/gates/{gate_id}").json()["gate"]
        assert gate["resolveToken"] == tide.gates.get("g5", "approve").token
        res = client.post(
            f"/runs/g5/gates/{gate_id}/resolve", json={"decision": "rejected", "actor": "ops"}
        )
        assert res.status_code == 200
        assert res.json()["gate"]["status"] == "rejected"
    assert tide.run("wf", wf, run_id="g5") == {"decision": "rejected", "actor": "ops"}


def test_gate_of_cancelled_run(tide: Tidebase, http: httpx.Client) -> None:
    _park(tide, "g6")
    gate_id = _gate_id(http, "g6")
    token = tide.gates.get("g6", "approve").token
    http.post("/runs/g6/cancel", json={})
    poll = http.get(f"/runs/g6/gates/{gate_id}").json()
    assert poll["runStatus"] == "cancelled"
    res = http.post(
        f"/runs/g6/gates/{gate_id}/resolve", json={"token": token, "decision": "approved"}
    )
    assert res.status_code == 409
    assert res.json()["code"] == "run_cancelled"


def test_gate_ids_are_url_safe_for_repeated_names(tide: Tidebase, http: httpx.Client) -> None:
    def wf(run: RunContext, data: Any) -> Any:
        run.gate("approve", "first?", wait=False)
        return None

    with pytest.raises(GatePending):
        tide.run("wf", wf, run_id="g7")
    tide.gates.resolve("g7", "approve", "approved", actor="a")

    def wf2(run: RunContext, data: Any) -> Any:
        run.gate("approve", "first?", wait=False)
        run.gate("approve", "second?", wait=False)
        return None

    with pytest.raises(GatePending):
        tide.run("wf", wf2, run_id="g7")
    gates = http.get("/runs/g7").json()["gates"]
    assert [g["name"] for g in gates] == ["approve", "approve#2"]
    second = gates[1]["id"]
    assert "#" not in second and "/" not in second
    res = http.get(f"/runs/g7/gates/{second}")
    assert res.json()["gate"]["prompt"] == "second?"


def test_unknown_gate_is_404(tide: Tidebase, http: httpx.Client) -> None:
    _park(tide, "g8")
    res = http.get("/runs/g8/gates/gate_bm9wZQ")
    assert res.status_code == 404
    assert res.json() == {"error": "gate not found", "code": "not_found"}
    res = http.post(
        "/runs/g8/gates/gate_bm9wZQ/resolve", json={"token": "t", "decision": "approved"}
    )
    assert res.status_code == 404


def _http_run(http: httpx.Client) -> str:
    run_id: str = http.post("/runs/gated", json={}).json()["run"]["id"]
    http.post(f"/runs/{run_id}/begin", headers={"x-tidebase-worker": "w"})
    return run_id


def test_gate_timeout_is_stored_and_decides_rejected(http: httpx.Client, tide: Tidebase) -> None:
    import time
    from datetime import datetime

    run_id = _http_run(http)
    begun = http.post(
        f"/runs/{run_id}/gates/begin", json={"name": "approve", "prompt": "ok?", "timeoutMs": 300}
    ).json()
    assert begun["action"] == "wait"
    gate = begun["gate"]
    expires = datetime.fromisoformat(gate["expiresAt"])
    assert 0.2 < (expires - datetime.fromisoformat(gate["createdAt"])).total_seconds() < 0.4
    # A second begin (a retried worker) keeps the first deadline.
    again = http.post(
        f"/runs/{run_id}/gates/begin",
        json={"name": "approve", "prompt": "ok?", "timeoutMs": 60_000},
    ).json()
    assert again["gate"]["expiresAt"] == gate["expiresAt"]
    time.sleep(0.4)
    polled = http.get(f"/runs/{run_id}/gates/{gate['id']}").json()["gate"]
    assert (polled["status"], polled["decision"], polled["actor"]) == (
        "rejected",
        "rejected",
        "timeout",
    )
    assert polled["decisionPayload"] == {"reason": "timeout"}
    late = http.post(
        f"/runs/{run_id}/gates/{gate['id']}/resolve",
        json={"token": gate["resolveToken"], "decision": "approved"},
    )
    assert (late.status_code, late.json()["code"]) == (409, "gate_already_resolved")
    rejoin = http.post(f"/runs/{run_id}/gates/begin", json={"name": "approve", "prompt": "ok?"})
    assert rejoin.json()["action"] == "return"
    assert tide.gates.get(run_id, "approve").actor == "timeout"  # one store
    types = [e["type"] for e in http.get(f"/runs/{run_id}").json()["events"]]
    assert types.count("gate.resolved") == 1


def test_a_gate_decided_in_time_keeps_its_decision(http: httpx.Client) -> None:
    import time

    run_id = _http_run(http)
    gate = http.post(
        f"/runs/{run_id}/gates/begin", json={"name": "g", "prompt": "ok?", "timeoutMs": 300}
    ).json()["gate"]
    res = http.post(
        f"/runs/{run_id}/gates/{gate['id']}/resolve",
        json={"token": gate["resolveToken"], "decision": "approved", "actor": "human"},
    )
    assert res.status_code == 200
    time.sleep(0.4)
    polled = http.get(f"/runs/{run_id}/gates/{gate['id']}").json()["gate"]
    assert (polled["status"], polled["actor"]) == ("approved", "human")


def test_gate_timeouts_are_enforced_without_readers(
    make_server: Callable[..., RunningServer], tide: Tidebase
) -> None:
    """The server's reconciler decides an expired gate though nobody reads it over HTTP; the
    run waiting at it is waiting no more."""
    import time

    server = make_server(reconcile_seconds=0.05)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        run_id = _http_run(http)
        http.post(
            f"/runs/{run_id}/gates/begin", json={"name": "g", "prompt": "ok?", "timeoutMs": 200}
        )
        assert tide.runs.get(run_id).status == "waiting"
        deadline = time.monotonic() + 10
        while tide.gates.get(run_id, "g").status == "pending":
            assert time.monotonic() < deadline, "the gate never expired"
            time.sleep(0.05)
        assert tide.gates.get(run_id, "g").actor == "timeout"
        assert tide.runs.get(run_id).status == "running"  # its worker's lease is live


def test_bad_gate_timeouts_are_refused(http: httpx.Client) -> None:
    run_id = _http_run(http)
    for bad in (0, -5, "soon", 1.5):
        res = http.post(
            f"/runs/{run_id}/gates/begin", json={"name": "g", "prompt": "ok?", "timeoutMs": bad}
        )
        assert res.status_code == 400, (bad, res.text)
        assert res.json()["issues"][0]["path"] == ["timeoutMs"]
    assert http.get(f"/runs/{run_id}").json()["gates"] == []
