"""The server's frame: health, the error envelope, /openapi.json, the broker's 501, the
access log, graceful shutdown with an open event stream."""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest

from .conftest import RunningServer


def test_health(http: httpx.Client) -> None:
    res = http.get("/health")
    assert res.status_code == 200
    assert res.json() == {"ok": True}


def test_unknown_run_is_a_json_404(http: httpx.Client) -> None:
    for method, path in [
        ("GET", "/runs/run_missing"),
        ("POST", "/runs/run_missing/cancel"),
        ("GET", "/runs/run_missing/events"),
        ("GET", "/runs/run_missing/gates/gate_YQ"),
        ("GET", "/runs/run_missing/state/versions"),
        ("GET", "/runs/run_missing/usage"),
    ]:
        res = http.request(method, path)
        assert res.status_code == 404, (method, path)
        assert res.json() == {"error": "run not found", "code": "not_found"}


def test_bad_bodies_are_400_with_issues(http: httpx.Client) -> None:
    res = http.post("/runs/wf", content=b"{not json", headers={"content-type": "application/json"})
    assert res.status_code == 400
    body = res.json()
    assert body["error"] == "invalid request body"
    assert body["code"] == "invalid_request"
    assert body["issues"][0]["message"].startswith("not valid JSON")

    res = http.post("/runs/wf", json=[1, 2])
    assert res.status_code == 400
    assert res.json()["issues"] == [{"path": [], "message": "expected a JSON object"}]

    res = http.post("/runs/wf", json={"metadata": "not an object"})
    assert res.status_code == 400
    assert res.json()["issues"][0]["path"] == ["metadata"]

    res = http.get("/runs?limit=0")
    assert res.status_code == 400
    assert res.json()["code"] == "invalid_request"


def test_unsupported_fields_are_refused_not_ignored(http: httpx.Client) -> None:
    run_id = http.post("/runs/wf", json={}).json()["run"]["id"]
    for method, path, body, field in [
        ("POST", f"/runs/{run_id}/state/save", {"label": "l", "reason": "why"}, "reason"),
        (
            "POST",
            f"/runs/{run_id}/gates/begin",
            {"name": "g", "prompt": "ok?", "capability": {"x": 1}},
            "capability",
        ),
    ]:
        res = http.request(method, path, json=body)
        assert res.status_code == 422, res.text
        assert res.json()["code"] == "unsupported"
        assert field in res.json()["error"]
    detail = http.get(f"/runs/{run_id}").json()
    assert (detail["state"], detail["gates"]) == (None, [])  # nothing half-written


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/agents"),
        ("GET", "/agents/a1"),
        ("POST", "/agents/a1/prove"),
        ("POST", "/resources"),
        ("POST", "/resources/r1/revoke"),
        ("GET", "/audit"),
        ("POST", "/runs/run_x/grants"),
        ("POST", "/runs/run_x/grants/g1/use"),
    ],
)
def test_credential_broker_is_501(http: httpx.Client, method: str, path: str) -> None:
    res = http.request(method, path, json={})
    assert res.status_code == 501
    assert res.json()["code"] == "not_implemented"


def test_openapi_describes_the_routes(http: httpx.Client) -> None:
    spec = http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    for path, method in [
        ("/health", "get"),
        ("/runs", "get"),
        ("/runs/{workflowName}", "post"),
        ("/runs/{runId}", "get"),
        ("/runs/{runId}/cancel", "post"),
        ("/runs/{runId}/events", "get"),
        ("/runs/{runId}/gates/{gateId}", "get"),
        ("/runs/{runId}/gates/{gateId}/resolve", "post"),
        ("/runs/{runId}/state/versions", "get"),
        ("/runs/{runId}/snapshots", "get"),
        ("/runs/{runId}/usage", "get"),
        ("/runs/{runId}/begin", "post"),
        ("/runs/{runId}/heartbeat", "post"),
        ("/runs/{runId}/complete", "post"),
        ("/runs/{runId}/fail", "post"),
        ("/runs/{runId}/steps/begin", "post"),
        ("/runs/{runId}/steps/{stepId}/complete", "post"),
        ("/runs/{runId}/steps/{stepId}/fail", "post"),
        ("/runs/{runId}/gates/begin", "post"),
        ("/runs/{runId}/state", "get"),
        ("/runs/{runId}/state", "put"),
        ("/runs/{runId}/state", "patch"),
        ("/runs/{runId}/state/save", "post"),
        ("/runs/{runId}/usage", "post"),
        ("/runs/{runId}/children", "post"),
        ("/agents", "post"),
    ]:
        assert method in paths[path], (path, method)
    assert "409" in paths["/runs/{runId}/gates/{gateId}/resolve"]["post"]["responses"]
    begin = paths["/runs/{runId}/steps/begin"]["post"]["requestBody"]
    schema = begin["content"]["application/json"]["schema"]
    assert {"name", "inputHash"} <= set(schema["required"])
    assert "leaseOwner" in schema["properties"]
    assert "501" in paths["/agents"]["post"]["responses"]
    assert paths["/health"]["get"]["security"] == []
    assert "401" not in paths["/health"]["get"]["responses"]
    assert "401" in paths["/runs"]["get"]["responses"]
    assert paths["/runs/{runId}"]["get"]["parameters"][0]["name"] == "runId"


class _Capture(logging.Handler):
    """Records of the server thread, with an event set when an access record arrives (the
    record is written after the response went out, so the client can be first)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []
        self.arrived = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "status"):
            self.records.append(record)
            self.arrived.set()


def test_access_log_has_fields_and_never_the_query(make_server: object) -> None:
    server = make_server(api_key="k")  # type: ignore[operator]
    logger = logging.getLogger("tidebase.server")
    capture = _Capture()
    logger.addHandler(capture)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with httpx.Client(base_url=server.url) as client:
            client.get("/runs?token=k&limit=5")
        assert capture.arrived.wait(10), "no access log record"
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
    record = capture.records[0]
    assert record.method == "GET"  # type: ignore[attr-defined]
    assert record.path == "/runs"  # type: ignore[attr-defined]
    assert record.status == 401  # type: ignore[attr-defined]
    assert isinstance(record.duration_ms, float)  # type: ignore[attr-defined]
    assert "token" not in record.getMessage()
    assert record.getMessage().startswith("GET /runs 401 ")


def test_shutdown_ends_open_event_streams(server: RunningServer, http: httpx.Client) -> None:
    run = http.post("/runs/wf", json={}).json()["run"]
    lines: list[str] = []
    opened = threading.Event()

    def watch() -> None:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            with client.stream("GET", f"/runs/{run['id']}/events") as res:
                for line in res.iter_lines():
                    lines.append(line)
                    if line.startswith("data:"):
                        opened.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert opened.wait(30)
    began = time.monotonic()
    server.stop()  # asserts the server thread ended
    # The stream ended at once rather than holding shutdown up to its 10 s grace period.
    assert time.monotonic() - began < 5
    watcher.join(30)
    assert not watcher.is_alive()
    assert any('"type":"run.created"' in line for line in lines)
