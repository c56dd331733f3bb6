"""``tidebase serve`` as a real process: --port / PORT, the access log on stderr, graceful
shutdown on SIGTERM while an event stream is open."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Serve:
    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from tidebase.cli import main; main()", "serve", *args],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def expect(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"{text!r} not in the server's output:\n{''.join(self.seen)}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line


@pytest.fixture
def serve(tidebase_env: dict[str, str]) -> Iterator[tuple[Serve, str]]:
    port = _free_port()
    env = {**tidebase_env, "PORT": str(port)}
    env.pop("TIDEBASE_API_KEY", None)
    server = Serve(env)
    try:
        server.expect("Uvicorn running on")
        yield server, f"http://127.0.0.1:{port}"
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def test_serve_answers_logs_and_stops_gracefully(serve: tuple[Serve, str]) -> None:
    server, url = serve
    assert httpx.get(f"{url}/health").json() == {"ok": True}
    run = httpx.post(f"{url}/runs/cli-flow", json={"input": 1}).json()["run"]
    assert httpx.get(f"{url}/runs").json()["runs"][0]["id"] == run["id"]
    server.expect("POST /runs/cli-flow 200")

    got_first = threading.Event()
    lines: list[str] = []

    def watch() -> None:
        with httpx.stream("GET", f"{url}/runs/{run['id']}/events", timeout=30) as res:
            for line in res.iter_lines():
                lines.append(line)
                got_first.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert got_first.wait(30)
    began = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0
    assert time.monotonic() - began < 8  # the open stream did not hold shutdown up
    watcher.join(30)
    assert not watcher.is_alive()
    assert any("run.created" in line for line in lines)


def test_port_option_and_host(tidebase_env: dict[str, str]) -> None:
    port = _free_port()
    server = Serve(tidebase_env, "--host", "127.0.0.1", "--port", str(port))
    try:
        server.expect(f"127.0.0.1:{port}")
        assert httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    finally:
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(30) == 0
