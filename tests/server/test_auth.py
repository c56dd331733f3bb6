"""Auth (DESIGN §8): with an API key, bearer on every route but /health, ``?token=`` on the
event stream only; without one, open (but no reader counts as authenticated)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from .conftest import KEY, RunningServer

SURFACES = [
    ("POST", "/runs/some-workflow"),
    ("GET", "/runs"),
    ("GET", "/runs/run_x"),
    ("POST", "/runs/run_x/cancel"),
    ("GET", "/runs/run_x/events"),
    ("GET", "/runs/run_x/gates/gate_YQ"),
    ("POST", "/runs/run_x/gates/gate_YQ/resolve"),
    ("GET", "/runs/run_x/state/versions"),
    ("GET", "/runs/run_x/usage"),
    ("GET", "/openapi.json"),
    ("POST", "/agents"),
    ("GET", "/no/such/route"),
]


@pytest.fixture
def keyed(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server(api_key=KEY)


def test_open_without_a_key(http: httpx.Client) -> None:
    res = http.post("/runs/wf", json={})
    assert res.status_code == 200
    assert res.json()["run"]["id"].startswith("run_")


def test_every_surface_but_health_needs_the_key(keyed: RunningServer) -> None:
    with httpx.Client(base_url=keyed.url) as client:
        for method, path in SURFACES:
            res = client.request(method, path, json={})
            assert res.status_code == 401, (method, path)
            assert res.json() == {"error": "unauthorized", "code": "unauthorized"}
        assert client.get("/health").json() == {"ok": True}


def test_wrong_key_and_malformed_header(keyed: RunningServer) -> None:
    with httpx.Client(base_url=keyed.url) as client:
        for header in ("Bearer not-the-key", KEY, f"bearer {KEY}", f"Basic {KEY}", "Bearer"):
            res = client.get("/runs", headers={"authorization": header})
            assert res.status_code == 401, header


def test_the_key_works_end_to_end(keyed: RunningServer) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=keyed.url, headers=auth) as client:
        run = client.post("/runs/auth-workflow", json={}).json()["run"]
        assert client.get(f"/runs/{run['id']}").status_code == 200
        assert client.post(f"/runs/{run['id']}/cancel", json={}).status_code == 200
        assert client.get("/openapi.json").status_code == 200


def test_query_token_on_the_event_stream_only(keyed: RunningServer) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=keyed.url) as client:
        run = client.post("/runs/auth-sse", json={}, headers=auth).json()["run"]
        client.post(f"/runs/{run['id']}/cancel", json={}, headers=auth)  # stream ends
        assert client.get(f"/runs?token={KEY}").status_code == 401
        assert client.get(f"/runs/{run['id']}?token={KEY}").status_code == 401
        with client.stream("GET", f"/runs/{run['id']}/events?token={KEY}") as res:
            assert res.status_code == 200
            res.read()
        assert client.get(f"/runs/{run['id']}/events").status_code == 401
        assert client.get(f"/runs/{run['id']}/events?token=wrong").status_code == 401


def test_an_empty_key_fails_closed(make_server: Callable[..., RunningServer]) -> None:
    server = make_server(api_key="")
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/runs").status_code == 401
        assert client.get("/runs", headers={"authorization": "Bearer x"}).status_code == 401
        assert client.get("/health").status_code == 200
