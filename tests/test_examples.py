"""The examples, end to end, on the embedded default (no TIDEBASE_DATABASE_URL)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tidebase import Tidebase

from .conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture
def embedded_env(tidebase_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The examples' own default (the embedded server's ``tidebase`` database), in a fresh
    schema so nothing mixes with a developer's runs."""
    env = {k: v for k, v in tidebase_env.items() if k != "TIDEBASE_DATABASE_URL"}
    env["TIDEBASE_SCHEMA"] = f"ex_{uuid.uuid4().hex[:10]}"
    yield env
    with (
        Tidebase(schema=env["TIDEBASE_SCHEMA"]) as tide,
        psycopg.connect(tide.open()._store.url or "", autocommit=True) as conn,
    ):
        conn.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                sql.Identifier(env["TIDEBASE_SCHEMA"])
            )
        )


def example(name: str, env: dict[str, str], *args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / name), *args],
        env={**env, **extra},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_research_publish_waits_for_approval_from_another_process(
    embedded_env: dict[str, str],
) -> None:
    proc = example("research_publish.py", embedded_env, "article-1")
    with Tidebase(schema=embedded_env["TIDEBASE_SCHEMA"]) as tide:
        deadline = time.monotonic() + 60
        while not tide.gates.list(status="pending"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        (gate,) = tide.gates.list(status="pending")
        assert (gate.run_id, gate.name) == ("article-1", "publish")
        assert tide.runs.state("article-1")["phase"] == "awaiting approval"
        # the one-liner the example prints, run from another process
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import tidebase; tidebase.Tidebase().gates.resolve("
                "'article-1', 'publish', 'approved', actor='you')",
            ],
            env=embedded_env,
            cwd=ROOT,
            check=True,
            timeout=60,
        )
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "'status': 'published'" in out and "'by': 'you'" in out
        assert tide.runs.state("article-1")["phase"] == "published"
        assert tide.usage.summary("article-1").calls == 2


def test_fanout_killed_midway_resumes_without_rerunning_finished_agents(
    embedded_env: dict[str, str],
) -> None:
    crashed = example("fanout.py", embedded_env, "team-1", FAIL_AT="critic")
    out, _ = crashed.communicate(timeout=60)
    assert crashed.returncode == -signal.SIGKILL, out

    resumed = example("fanout.py", embedded_env, "team-1")
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert "executing critic" in out
    assert "executing researcher" not in out and "executing editor" not in out
    assert "child team-1/agents/researcher" in out and "after 1 attempt(s)" in out
    assert "child team-1/agents/critic" in out
