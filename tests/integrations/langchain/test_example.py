"""examples/langchain_research.py, offline, killed inside its side-effecting tool and resumed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tidebase import Tidebase

from ...conftest import ROOT

pytestmark = pytest.mark.slow


def example(env: dict[str, str], run_id: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "langchain_research.py"), run_id],
        env={k: v for k, v in {**env, **extra}.items() if k != "OPENAI_API_KEY"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_example_resumes_after_a_kill_inside_save_note(
    tidebase_env: dict[str, str], tide: Tidebase, tmp_path: Path
) -> None:
    env = {**tidebase_env, "NOTES_DIR": str(tmp_path / "notes")}
    killed = example(env, "ex-1", FAIL_AT="save_note")
    assert killed.returncode == -9, killed.stderr
    assert killed.stdout.count("executing model call") == 2

    resumed = example(env, "ex-1")
    assert resumed.returncode == 0, resumed.stderr
    ran = [line.strip() for line in resumed.stdout.splitlines() if "executing" in line]
    assert ran == ["executing save_note('tides')", "executing model call (6 messages in)"]

    clean = example(env, "ex-2")
    answer = [line for line in clean.stdout.splitlines() if line.startswith("answer:")]
    assert answer and answer[0] in resumed.stdout
    assert (tmp_path / "notes" / "tides.md").exists()
    assert len(tide.usage.records("ex-1")) == len(tide.usage.records("ex-2")) == 3
