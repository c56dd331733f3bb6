"""``examples/pydantic_ai_triage.py`` offline, end to end: killed inside a tool, resumed there,
approved from another process."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tidebase import Tidebase

from ...conftest import ROOT

pytestmark = pytest.mark.slow


def triage(env: dict[str, str], **extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in env.items() if k != "OPENAI_API_KEY"}  # offline model
    return subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "pydantic_ai_triage.py"), "triage-1"],
        env={**env, **extra},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_killed_in_create_ticket_it_resumes_there_and_deploys_once_approved(
    tidebase_env: dict[str, str], tide: Tidebase
) -> None:
    killed = triage(tidebase_env, FAIL_AT="create_ticket")
    out, err = killed.communicate(timeout=60)
    assert killed.returncode == -9, err
    assert out.count("model request") == 2 and "executing search_logs" in out

    resumed = triage(tidebase_env)
    deadline = time.monotonic() + 60
    while not tide.gates.list(status="pending"):
        assert resumed.poll() is None and time.monotonic() < deadline, resumed.communicate()
        time.sleep(0.05)
    tide.gates.resolve("triage-1", "approve-deploy:checkout", "approved", actor="you")
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err

    # Only the interrupted tool and what came after it executed again.
    assert "model request 1" not in out and "model request 2" not in out
    assert "executing search_logs" not in out
    assert out.count("executing create_ticket") == 1 and out.count("ticketing API") == 1
    assert "model request 3" in out and "rolling back checkout" in out
    assert "'deployed': True, 'by': 'you'" in out
    assert len(tide.usage.records("triage-1")) == 3
