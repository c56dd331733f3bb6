"""A real ``tidebase serve`` app on 127.0.0.1 (uvicorn in a thread with its own event loop and
its own AsyncTidebase), on the test's database and schema; tests talk to it over HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("starlette", reason="needs tidebase[server]")
pytest.importorskip("httpx", reason="needs httpx (the dev extra) to talk to the server")

import httpx

from tidebase_core._async.client import AsyncTidebase
from tidebase_server.app import create_app
from tidebase_server.serve import ProtocolServer

KEY = "test-secret-key"


class _Server(ProtocolServer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class RunningServer:
    """The server thread: ``url`` to talk to, ``stop()`` for a graceful shutdown."""

    def __init__(
        self,
        database_url: str,
        schema: str,
        api_key: str | None,
        lease_seconds: float | None,
        reconcile_seconds: float | None = None,
    ) -> None:
        self._tide = AsyncTidebase(database_url, schema=schema)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(256)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self.server = _Server(
            create_app(
                self._tide,
                api_key=api_key,
                lease_seconds=lease_seconds,
                reconcile_seconds=reconcile_seconds,
            ),
            log_config=None,
            log_level="warning",
        )
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="tidebase-serve", daemon=True)
        self._thread.start()
        self.server.ready.wait(60)
        if not self.server.ready.is_set():
            raise RuntimeError(f"the server did not start: {self._error!r}")

    def _run(self) -> None:
        async def main() -> None:
            try:
                await self.server.serve(sockets=[self._sock])
            finally:
                await self._tide.close()

        try:
            asyncio.run(main())
        except BaseException as exc:
            self._error = exc
            self.server.ready.set()

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(30)
        self._sock.close()
        assert not self._thread.is_alive(), "the server did not shut down"


@pytest.fixture
def make_server(
    tidebase_database_url: str, tidebase_schema: str
) -> Iterator[Callable[..., RunningServer]]:
    started: list[RunningServer] = []

    def make(
        api_key: str | None = None,
        lease_seconds: float | None = None,
        reconcile_seconds: float | None = None,
    ) -> RunningServer:
        """A server; ``reconcile_seconds`` set: it ticks the reconciler that often."""
        server = RunningServer(
            tidebase_database_url, tidebase_schema, api_key, lease_seconds, reconcile_seconds
        )
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., RunningServer]) -> RunningServer:
    return make_server()


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def sse_events(response: httpx.Response) -> Iterator[tuple[int, dict[str, Any]]]:
    """(id, data) of each event of an open SSE response, as they arrive."""
    event_id: int | None = None
    for line in response.iter_lines():
        if line.startswith("id:"):
            event_id = int(line[3:].strip())
        elif line.startswith("data:"):
            assert event_id is not None
            yield event_id, json.loads(line[5:].strip())
            event_id = None
