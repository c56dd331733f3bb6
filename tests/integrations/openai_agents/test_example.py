"""examples/openai_agents_support.py, offline, end to end: killed inside a tool, resumed,
approved from another process."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tidebase import Tidebase

from ...conftest import ROOT

pytestmark = pytest.mark.slow

EXAMPLE = str(ROOT / "examples" / "openai_agents_support.py")


def test_the_support_example_resumes_after_a_kill_and_refunds_once_approved(
    tide: Tidebase, tidebase_env: dict[str, str]
) -> None:
    crashed = subprocess.run(
        [sys.executable, EXAMPLE, "support-1"],
        env={**tidebase_env, "FAIL_AT": "lookup_order"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert crashed.returncode == -9, crashed.stderr
    assert crashed.stdout.count("model call") == 1

    resumed = subprocess.Popen(
        [sys.executable, EXAMPLE, "support-1"],
        env=tidebase_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not tide.gates.list(status="pending", run_id="support-1"):
        assert resumed.poll() is None and time.monotonic() < deadline, resumed.communicate()
        time.sleep(0.05)
    [gate] = tide.gates.list(status="pending", run_id="support-1")
    tide.gates.resolve("support-1", gate.name, "approved", actor="you")
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err

    assert "answer: Your refund of 30 EUR for order A1 is on its way." in out
    # The first model call was replayed; the tool that was killed ran again, the rest once.
    assert "model call (0 tool results so far)" not in out
    assert out.count("executing lookup_order") == 1 and out.count("executing issue_refund") == 1
    assert tide.usage.summary("support-1").calls == 4
