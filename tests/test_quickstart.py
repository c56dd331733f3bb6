"""The README's quickstart, end to end: kill it inside a step, resume it by run id."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.slow


def quickstart(env: dict[str, str], *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py"), *args],
        env={**env, **extra},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_quickstart_dies_at_fail_at_and_the_rerun_replays_finished_steps(
    tidebase_env: dict[str, str],
) -> None:
    crashed = quickstart(tidebase_env, "qs-1", FAIL_AT="draft")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert "executing research" in crashed.stdout and "executing draft" in crashed.stdout

    resumed = quickstart(tidebase_env, "qs-1")
    assert resumed.returncode == 0, resumed.stderr
    out = resumed.stdout
    assert "executing research" not in out
    assert "executing draft" in out and "executing publish" in out
    assert "research   replayed from its checkpoint" in out
    assert "draft      executed now" in out
    assert "run qs-1 is completed after 2 attempt(s)" in out


def test_quickstart_on_the_embedded_default(tidebase_env: dict[str, str]) -> None:
    """No TIDEBASE_DATABASE_URL: the example starts (or reuses) the embedded server itself."""
    env = {k: v for k, v in tidebase_env.items() if k != "TIDEBASE_DATABASE_URL"}
    done = quickstart(env)
    assert done.returncode == 0, done.stderr
    assert "is completed after 1 attempt(s)" in done.stdout
