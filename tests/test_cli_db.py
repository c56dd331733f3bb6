"""``tidebase db status|start|stop|url|migrate`` and ``tidebase migrate``: through typer's
CliRunner on a home of their own, plus the real ``python -m tidebase``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from tidebase import Tidebase
from tidebase.cli import app
from tidebase.errors import MigrationsPending

from .test_embedded import child_env, home  # noqa: F401  (a fixture)

runner = CliRunner()


def status_json(*args: str) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["db", "status", "--json", *args])
    return result.exit_code, json.loads(result.stdout)


def test_start_status_url_stop_of_the_embedded_server(home: Path) -> None:  # noqa: F811
    code, info = status_json()
    assert code == 1
    assert info["running"] is False and info["state"] == "not initialized"

    started = runner.invoke(app, ["db", "start"])
    assert started.exit_code == 0, started.output
    assert "running (pid" in started.stdout

    code, info = status_json()
    assert code == 0, info
    assert info["running"] is True and info["state"] == "ready"
    assert info["database"] == "embedded" and info["home"] == str(home)
    assert isinstance(info["pid"], int)
    assert str(info["version"]).startswith("18")
    assert isinstance(info["pending_migrations"], int) and info["pending_migrations"] > 0
    migrated = runner.invoke(app, ["db", "migrate"])
    assert migrated.exit_code == 0 and "applied 0001_" in migrated.stdout
    assert status_json()[1]["pending_migrations"] == 0
    url = runner.invoke(app, ["db", "url"])
    assert url.exit_code == 0
    assert url.stdout.strip() == info["url"]
    with psycopg.connect(url.stdout.strip()) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("tidebase",)

    human = runner.invoke(app, ["db", "status"])
    assert human.exit_code == 0
    assert "ready" in human.stdout and str(info["pid"]) in human.stdout

    stopped = runner.invoke(app, ["db", "stop"])
    assert stopped.exit_code == 0, stopped.output
    assert "stopped the embedded PostgreSQL" in stopped.stdout
    again = runner.invoke(app, ["db", "stop"])
    assert again.exit_code == 0 and "was not running" in again.stdout
    code, info = status_json()
    assert code == 1 and info["state"] == "stopped" and info["pid"] is None


def test_migrate_is_the_command_migrations_pending_names(
    tidebase_database_url: str, tidebase_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEBASE_DATABASE_URL", tidebase_database_url)
    with pytest.raises(MigrationsPending) as info:
        Tidebase(schema=tidebase_schema, auto_migrate=False).run(
            "wf", lambda run, input: 1, run_id="r"
        )
    assert "`tidebase migrate`" in str(info.value)

    code, status = status_json("--schema", tidebase_schema)
    assert code == 0 and status["database"] == "external"
    assert isinstance(status["pending_migrations"], int) and status["pending_migrations"] > 0

    applied = runner.invoke(app, ["migrate", "--schema", tidebase_schema])
    assert applied.exit_code == 0, applied.output
    assert "applied 0001_" in applied.stdout
    again = runner.invoke(app, ["db", "migrate", "--schema", tidebase_schema])
    assert again.exit_code == 0 and "is up to date" in again.stdout

    with Tidebase(schema=tidebase_schema, auto_migrate=False) as tide:
        assert tide.run("wf", lambda run, input: 1, run_id="r") == 1


def test_with_a_database_url_start_and_stop_manage_only_the_embedded_server(
    tidebase_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEBASE_DATABASE_URL", tidebase_database_url)
    code, info = status_json()
    assert code == 0 and info["database"] == "external" and info["running"] is True
    for action in ("start", "stop"):
        result = runner.invoke(app, ["db", action])
        assert result.exit_code == 1
        assert "manages only the embedded PostgreSQL" in result.stderr


def test_status_of_an_unreachable_database_hides_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDEBASE_DATABASE_URL", "postgresql://u:s3cr3t@127.0.0.1:1/db")
    result = runner.invoke(app, ["db", "status", "--json"])
    assert result.exit_code == 1
    info = json.loads(result.stdout)
    assert info["running"] is False and "Connection refused" in str(info["error"])
    assert "s3cr3t" not in result.output
    url = runner.invoke(app, ["db", "url"])
    assert url.exit_code == 0 and "s3cr3t" not in url.stdout and "***" in url.stdout
    failed = runner.invoke(app, ["migrate"])
    assert failed.exit_code == 1 and "s3cr3t" not in failed.output


def test_usage_errors_exit_with_2() -> None:
    assert runner.invoke(app, ["db", "nope"]).exit_code == 2
    assert runner.invoke(app, ["db", "stop", "--mode", "sideways"]).exit_code == 2
    assert runner.invoke(app, ["db", "status", "--bogus"]).exit_code == 2


@pytest.mark.slow
def test_python_m_tidebase_db_status(home: Path) -> None:  # noqa: F811
    assert runner.invoke(app, ["db", "start"]).exit_code == 0
    done = subprocess.run(
        [sys.executable, "-m", "tidebase", "db", "status", "--json"],
        env=child_env(TIDEBASE_HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["running"] is True and info["home"] == str(home)
