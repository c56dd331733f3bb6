"""A bounded load test of ``tidebase serve`` (a real process, loopback only): SSE subscribers
and protocol workers at once; no subscriber loses or repeats an event; p50/p99 of steps/begin
and steps/complete printed. The default suite runs a short variant; ``nox -s server-load``
the full one (TIDEBASE_LOAD_SUBSCRIBERS=200, TIDEBASE_LOAD_WORKERS=50,
TIDEBASE_LOAD_SECONDS=60)."""

from __future__ import annotations

import asyncio
import os
import queue
import re
from collections.abc import Iterator

import pytest

from .load import EVENTS_PER_RUN, drive_load, percentile
from .test_cli_serve import Serve, _free_port

pytestmark = pytest.mark.slow


def _size(name: str, default: int) -> int:
    return int(os.environ.get(f"TIDEBASE_LOAD_{name}", default))


_ACCESS = re.compile(r"POST /runs/[^ ]+/steps/(begin|[^ /]+/complete) (\d+) ([\d.]+)ms")


def _server_side(server: Serve) -> dict[str, list[float]]:
    """Durations (ms) the server's access log recorded for steps/begin and steps/complete."""
    found: dict[str, list[float]] = {"begin": [], "complete": []}
    while True:
        try:
            line = server.lines.get_nowait()
        except queue.Empty:
            return found
        match = _ACCESS.search(line)
        if match:
            kind = "begin" if match[1] == "begin" else "complete"
            found[kind].append(float(match[3]))


@pytest.fixture
def served(tidebase_env: dict[str, str]) -> Iterator[tuple[str, Serve]]:
    port = _free_port()
    env = {**tidebase_env, "PORT": str(port), "TIDEBASE_RECONCILER": "0"}
    env.pop("TIDEBASE_API_KEY", None)
    server = Serve(env)
    try:
        server.expect("Uvicorn running on")
        yield f"http://127.0.0.1:{port}", server
    finally:
        if server.proc.poll() is None:
            server.proc.terminate()
            server.proc.wait(30)


def test_sse_subscribers_and_workers_under_load(served: tuple[str, Serve]) -> None:
    url, server = served
    subscribers = _size("SUBSCRIBERS", 20)
    workers = _size("WORKERS", 5)
    seconds = _size("SECONDS", 3)
    report = asyncio.run(drive_load(url, subscribers=subscribers, workers=workers, seconds=seconds))
    print("\n" + report.summary())
    for kind, values in _server_side(server).items():
        print(
            f"  server-side steps/{kind}: p50 {percentile(values, 50):.1f} ms, "
            f"p99 {percentile(values, 99):.1f} ms (n={len(values)}, from the access log)"
        )
    assert report.problems == [], report.problems[:5]
    assert report.runs >= workers  # every worker finished at least one run
    # Each run was read in full by each of its worker's subscribers.
    per_run = subscribers // workers
    assert report.streams >= report.runs * per_run
    assert report.events >= report.streams * EVENTS_PER_RUN
    assert report.runs * 3 <= len(report.begin_ms) == len(report.complete_ms)
