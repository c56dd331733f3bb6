"""Shared helpers: a handle on real worker subprocesses, and an execution log.

The database fixtures (``tide``, ``atide``, ``tidebase_env`` …) come from Tidebase's own pytest
plugin, ``tidebase.testing``, the same one users get.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    """A ``python -m <module> <run_id> <log>`` subprocess whose stdout lines can be awaited
    (``tests.worker`` by default; integration tests bring worker modules of their own)."""

    def __init__(
        self,
        run_id: str,
        log: Path,
        env: dict[str, str],
        module: str = "tests.worker",
        **extra_env: str,
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, run_id, str(log)],
            cwd=ROOT,
            env={**env, **extra_env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("<EOF>")

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        """Block until the worker prints a line starting with ``prefix``; return it."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"worker printed no {prefix!r} in {timeout}s: {self.seen}"
                ) from None
            if line == "<EOF>":
                self.lines.put(line)  # stays at EOF for later calls
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise AssertionError(f"worker exited before {prefix!r}: {self.seen}\n{err}")
            self.seen.append(line)
            if line.startswith(prefix):
                return line

    def send(self, line: str = "go") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        """SIGKILL, then reap, as a crash would."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def finish(self, timeout: float = 60.0) -> str:
        """Wait for the worker to exit; return its RESULT or ERROR line."""
        while True:
            line = self.expect("", timeout)
            if line.startswith(("RESULT", "ERROR")):
                self.proc.wait(timeout=timeout)
                return line

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def workers(tidebase_env: dict[str, str]) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for w in started:
        w.close()


@pytest.fixture
def spawn(workers: list[Worker], tidebase_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """``spawn(run_id, log, module="tests.worker", **env)`` starts a worker process on the
    test's database."""

    def start(run_id: str, log: Path, module: str = "tests.worker", **extra_env: str) -> Worker:
        env = dict(tidebase_env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        worker = Worker(run_id, log, env, module, **extra_env)
        workers.append(worker)
        return worker

    return start


def executions(log: Path) -> Counter[str]:
    """How many times each step body started, from the workers' execution log."""
    if not log.exists():
        return Counter()
    return Counter(line.split()[0] for line in log.read_text().splitlines() if line)
