"""``tidebase runs|gates|usage|queues|schedules`` through typer's CliRunner, against the test
database: the runs are made in process with the ``tide`` fixture, the CLI finds them through
TIDEBASE_DATABASE_URL and TIDEBASE_SCHEMA."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from tidebase import RunContext, Tidebase
from tidebase.cli import app
from tidebase.errors import GatePending

from .cli_helpers import approval_flow, gate_pending, in_thread, parking_flow, wait_for

runner = CliRunner()


@pytest.fixture(autouse=True)
def cli_env(
    tidebase_database_url: str, tidebase_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEBASE_DATABASE_URL", tidebase_database_url)
    monkeypatch.setenv("TIDEBASE_SCHEMA", tidebase_schema)


def cli(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    return result


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--json").stdout)


def two_steps(run: RunContext, input: Any) -> dict[str, Any]:
    a = run.step("fetch", lambda: {"rows": 2}, input=input)
    run.usage.record(
        provider="openai", model="gpt-4o", input_tokens=100, output_tokens=20, cost_usd="0.0021"
    )
    return {"fetched": a}


def careless_email(run: RunContext, input: Any) -> str:
    def send() -> str:
        raise TimeoutError("the mail server timed out (did it send?)")

    return run.step("send email", send, side_effects=["email"])


def flaky(run: RunContext, input: Any) -> str:
    def boom() -> str:
        raise RuntimeError("upstream 503")

    return run.step("call", boom)


def test_runs_list_filters_and_prints_json(tide: Tidebase) -> None:
    tide.run("two-steps", two_steps, run_id="done-1", input={"q": 1})
    with pytest.raises(RuntimeError):
        tide.run("flaky", flaky, run_id="failed-1")

    table = cli("runs", "list").stdout
    assert "done-1" in table and "failed-1" in table and "two-steps" in table
    assert "completed" in table and "failed" in table

    runs = cli_json("runs", "list")
    assert [r["run_id"] for r in runs] == ["failed-1", "done-1"]  # newest first
    assert runs[1]["status"] == "completed" and runs[1]["result"] == {"fetched": {"rows": 2}}
    assert [r["run_id"] for r in cli_json("runs", "list", "--status", "failed")] == ["failed-1"]
    assert [r["run_id"] for r in cli_json("runs", "list", "-w", "two-steps")] == ["done-1"]
    assert len(cli_json("runs", "list", "--limit", "1")) == 1
    assert "no runs with status cancelled" in cli("runs", "list", "-s", "cancelled").stdout

    bad = cli("runs", "list", "--status", "sleeping", code=2)
    assert "sleeping" in bad.stderr


def test_runs_show_a_completed_run(tide: Tidebase) -> None:
    tide.run("two-steps", two_steps, run_id="done-1", input={"q": 1})
    shown = cli("runs", "show", "done-1").stdout
    assert "two-steps" in shown and "completed" in shown and "fetch" in shown
    step = tide.runs.steps("done-1")[0]
    assert step.input_hash and step.input_hash[:12] in shown
    assert "completed: nothing to do" in shown

    data = cli_json("runs", "show", "done-1")
    assert data["run"]["status"] == "completed"
    assert [s["name"] for s in data["steps"]] == ["fetch"]
    assert data["steps"][0]["resume_decision"] == "safe_replay"
    assert data["next"] == [] and data["gates"] == []


def test_a_parked_step_is_shown_with_the_commands_that_settle_it(tide: Tidebase) -> None:
    with pytest.raises(TimeoutError):
        tide.run("careless", careless_email, run_id="park-1")

    shown = cli("runs", "show", "park-1").stdout
    assert "parked for review" in shown and "manual_review" in shown
    assert "tidebase runs retry-step park-1 'send email'" in shown
    assert "tidebase runs complete-step park-1 'send email' --output JSON" in shown
    assert "TimeoutError: the mail server timed out" in shown
    data = cli_json("runs", "show", "park-1")
    assert data["parked_steps"] == ["send email"]
    assert data["next"][0] == "tidebase runs retry-step park-1 'send email'"

    cli("runs", "complete-step", "park-1", "send email", "--output", "{not json", code=2)
    done = cli(
        "runs",
        "complete-step",
        "park-1",
        "send email",
        "--output",
        '"sent by hand"',
        "--actor",
        "ops@example.com",
    )
    assert "completed by hand" in done.stdout and "tidebase runs recover park-1" in done.stdout
    assert tide.run("careless", careless_email, run_id="park-1") == "sent by hand"
    settled = [e for e in tide.runs.events("park-1") if e.type == "step.completed_by_hand"]
    assert settled[0].payload["actor"] == "ops@example.com"

    again = cli("runs", "complete-step", "park-1", "send email", "--output", "1", code=1)
    assert "already completed" in again.stderr


def test_retry_step_releases_a_parked_step(tide: Tidebase) -> None:
    with pytest.raises(TimeoutError):
        tide.run("careless", careless_email, run_id="park-2")
    released = cli("runs", "retry-step", "park-2", "send email")
    assert "released" in released.stdout
    events = [e for e in tide.runs.events("park-2") if e.type == "step.retry_approved"]
    assert events and events[0].payload["actor"].endswith("(cli)")
    missing = cli("runs", "retry-step", "park-2", "nope", code=1)
    assert "nope" in missing.stderr


def test_recover_a_failed_run(tide: Tidebase) -> None:
    with pytest.raises(RuntimeError):
        tide.run("flaky", flaky, run_id="failed-1")
    shown = cli("runs", "show", "failed-1").stdout
    assert "tidebase runs recover failed-1" in shown
    assert "RuntimeError: upstream 503" in shown
    recovered = cli("runs", "recover", "failed-1", "--reason", "fixed upstream")
    assert "failed → pending" in recovered.stdout
    assert tide.runs.get("failed-1").status == "pending"


def test_a_gate_from_show_to_approve(tide: Tidebase) -> None:
    with pytest.raises(GatePending):
        tide.run("parking", parking_flow, run_id="gate-1")
    shown = cli("runs", "show", "gate-1").stdout
    assert "waiting at a gate" in shown
    assert "tidebase gates approve gate-1 ship" in shown and "Ship it?" in shown
    shown_json = cli_json("runs", "show", "gate-1")
    assert [g["name"] for g in shown_json["gates"]] == ["ship"] and "token" not in shown_json[
        "gates"
    ][0]
    assert shown_json["next"] == [
        "tidebase gates approve gate-1 ship",
        "tidebase gates reject gate-1 ship",
    ]

    listed = cli("gates", "list").stdout
    assert "gate-1" in listed and "ship" in listed and "pending" in listed
    gates = cli_json("gates", "list")
    assert [(g["run_id"], g["name"], g["status"]) for g in gates] == [("gate-1", "ship", "pending")]
    assert "token" not in gates[0]

    approved = cli(
        "gates", "approve", "gate-1", "ship", "--actor", "bob", "--payload", '{"note": "lgtm"}'
    )
    assert "approved by bob" in approved.stdout
    assert tide.run("parking", parking_flow, run_id="gate-1") == "shipped by bob"
    assert tide.gates.get("gate-1", "ship").payload == {"note": "lgtm"}
    assert "no pending gates" in cli("gates", "list").stdout
    assert cli_json("gates", "list", "--status", "approved")[0]["actor"] == "bob"
    assert len(cli_json("gates", "list", "--status", "all", "--run", "gate-1")) == 1

    twice = cli("gates", "reject", "gate-1", "ship", code=1)
    assert "already approved by bob" in twice.stderr
    no_gate = cli("gates", "approve", "gate-1", "launch", code=1)
    assert "has no gate 'launch'; its gates: ship" in no_gate.stderr
    cli("gates", "approve", "gate-1", "ship", "--payload", "{x", code=2)


def test_reject_a_gate(tide: Tidebase) -> None:
    with pytest.raises(GatePending):
        tide.run("parking", parking_flow, run_id="gate-2")
    assert "rejected by" in cli("gates", "reject", "gate-2", "ship").stdout
    assert tide.gates.get("gate-2", "ship").status == "rejected"


def test_cancel_a_waiting_run_then_its_gate_cannot_be_decided(tide: Tidebase) -> None:
    with pytest.raises(GatePending):
        tide.run("parking", parking_flow, run_id="gate-3")
    cancelled = cli("runs", "cancel", "gate-3", "--reason", "wrong target")
    assert "cancelled run gate-3" in cancelled.stdout
    assert tide.runs.get("gate-3").status == "cancelled"
    again = cli("runs", "cancel", "gate-3")
    assert "already cancelled" in again.stdout
    refused = cli("gates", "approve", "gate-3", "ship", code=1)
    assert "cancel" in refused.stderr

    tide.run("two-steps", two_steps, run_id="done-1")
    assert "already completed" in cli("runs", "cancel", "done-1").stdout


def test_unknown_runs_exit_1_with_a_clear_message(tide: Tidebase) -> None:
    for args in (
        ["runs", "show", "nope"],
        ["runs", "watch", "nope"],
        ["runs", "cancel", "nope"],
        ["runs", "recover", "nope"],
        ["runs", "retry-step", "nope", "s"],
        ["runs", "complete-step", "nope", "s", "--output", "1"],
        ["usage", "summary", "nope"],
        ["gates", "approve", "nope", "ship"],
    ):
        result = cli(*args, code=1)
        assert "no run 'nope'" in result.stderr, args
        assert "tidebase" in result.stderr and "list" in result.stderr, args


def test_watch_prints_a_finished_runs_events_and_ends(tide: Tidebase) -> None:
    tide.run("two-steps", two_steps, run_id="done-1")
    watched = cli("runs", "watch", "done-1").stdout
    lines = watched.strip().splitlines()
    assert "run.started" in lines[0]
    assert any("step.completed" in line and "fetch" in line for line in lines)
    assert "run.completed" in watched and lines[-1] == "run done-1 is completed"

    as_json = [
        json.loads(line) for line in cli("runs", "watch", "done-1", "--json").stdout.splitlines()
    ]
    assert as_json[0]["type"] == "run.started" and as_json[-1]["type"] == "run.completed"
    assert [e["seq"] for e in as_json] == sorted(e["seq"] for e in as_json)
    after = cli("runs", "watch", "done-1", "--json", "--after", str(as_json[0]["seq"])).stdout
    assert len(after.splitlines()) == len(as_json) - 1


def test_watch_follows_a_live_run_until_it_completes(tide: Tidebase) -> None:
    thread, outcome = in_thread(tide, approval_flow, "live-1")
    wait_for(lambda: gate_pending(tide, "live-1"), what="the gate to open")

    def approve_soon() -> None:
        # Most likely decided while the watcher waits; if earlier, it catches up by seq.
        tide.gates.resolve("live-1", "ship", "approved", actor="alice")

    timer = threading.Timer(0.3, approve_soon)
    timer.start()
    watched = cli("runs", "watch", "live-1")
    timer.join()
    thread.join(30)
    assert outcome == ["shipped by alice"]
    out = watched.stdout
    assert out.index("gate.opened") < out.index("gate.resolved") < out.index("run.completed")
    assert "approved by alice" in out
    assert out.strip().endswith("run live-1 is completed")


def test_usage_summary(tide: Tidebase) -> None:
    tide.run("two-steps", two_steps, run_id="u-1")
    tide.run("two-steps", two_steps, run_id="u-2")
    table = cli("usage", "summary").stdout
    assert "gpt-4o" in table and "openai" in table and "0.004200" in table and "240" in table
    one = cli_json("usage", "summary", "u-1")
    assert (one["calls"], one["input_tokens"], one["output_tokens"]) == (1, 100, 20)
    assert Decimal(one["cost_usd"]) == Decimal("0.0021")
    assert one["by_model"][0]["model"] == "gpt-4o"
    assert cli_json("usage", "summary", "--workflow", "two-steps", "--since", "1h")["calls"] == 2
    assert cli_json("usage", "summary", "--workflow", "other")["calls"] == 0
    assert "no usage recorded" in cli("usage", "summary", "--since", "2999-01-01").stdout
    bad = cli("usage", "summary", "--since", "yesterday", code=2)
    assert "30m, 24h, 7d" in bad.stderr


def test_queues_list_and_configure() -> None:
    assert "no queues" in cli("queues", "list").stdout
    first = cli_json("queues", "configure", "emails", "--concurrency", "2")
    assert (first["name"], first["concurrency"], first["rate_per_minute"]) == ("emails", 2, None)
    # An option not given keeps its value.
    second = cli_json("queues", "configure", "emails", "--rate-per-minute", "30")
    assert (second["concurrency"], second["rate_per_minute"]) == (2, 30)
    listed = cli("queues", "list").stdout
    assert "emails" in listed and "30" in listed
    lifted = cli("queues", "configure", "emails", "--no-concurrency").stdout
    assert "concurrency no cap, rate 30/min" in lifted
    assert cli_json("queues", "list")[0]["concurrency"] is None
    cli("queues", "configure", "emails", "--concurrency", "0", code=2)
    cli("queues", "configure", "emails", "--concurrency", "3", "--no-concurrency", code=2)


def test_schedules_set_list_delete() -> None:
    assert "no schedules" in cli("schedules", "list").stdout
    made = cli(
        "schedules",
        "set",
        "nightly",
        "--cron",
        "0 3 * * *",
        "--workflow",
        "report",
        "--input",
        '{"topic": "tides"}',
    )
    assert "schedule 'nightly': 0 3 * * * → report" in made.stdout and "next fire" in made.stdout
    listed = cli_json("schedules", "list")
    assert [(s["name"], s["cron"], s["workflow_name"], s["input"]) for s in listed] == [
        ("nightly", "0 3 * * *", "report", {"topic": "tides"})
    ]
    assert "nightly" in cli("schedules", "list").stdout
    bad = cli("schedules", "set", "x", "--cron", "every night", "--workflow", "report", code=2)
    assert "5 fields" in bad.stderr or "fields" in bad.stderr
    assert "deleted schedule 'nightly'" in cli("schedules", "delete", "nightly").stdout
    gone = cli("schedules", "delete", "nightly", code=1)
    assert "no schedule 'nightly'" in gone.stderr


def test_shell_completion_completes_commands() -> None:
    def complete(words: str, cword: int) -> list[str]:
        env = {"_TIDEBASE_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        result = runner.invoke(app, [], env=env, prog_name="tidebase")
        return result.stdout.split()

    assert complete("tidebase ru", 1) == ["runs"]
    assert set(complete("tidebase runs ", 2)) >= {"list", "show", "watch", "retry-step"}
    assert complete("tidebase gates ap", 2) == ["approve"]


def test_a_run_a_live_worker_holds_is_not_recovered_from_under_it(tide: Tidebase) -> None:
    thread, outcome = in_thread(tide, approval_flow, "held-1")
    wait_for(lambda: gate_pending(tide, "held-1"), what="the gate to open")
    refused = cli("runs", "recover", "held-1", code=1)
    assert "is being executed by pid" in refused.stderr
    assert "tidebase runs cancel held-1" in refused.stderr
    step = cli("runs", "retry-step", "held-1", "missing", code=1)
    assert "has no step 'missing'; `tidebase runs show held-1` lists its steps" in step.stderr
    cli("gates", "reject", "held-1", "ship", "--actor", "carol")
    thread.join(30)
    assert outcome == ["not shipped (carol)"]


def test_an_unreachable_database_is_an_error_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIDEBASE_DATABASE_URL", "postgresql://u:s3cr3t@127.0.0.1:1/db")
    for args in (["runs", "list"], ["gates", "list", "--json"], ["usage", "summary"]):
        result = cli(*args, code=1)
        assert "s3cr3t" not in result.output and "error:" in result.stderr, args


def test_cancel_wait_returns_once_the_worker_has_stopped(tide: Tidebase) -> None:
    thread, outcome = in_thread(tide, approval_flow, "held-2")
    wait_for(lambda: gate_pending(tide, "held-2"), what="the gate to open")
    assert tide.runs.get("held-2").lease_expires_at is not None  # a live worker holds it
    done = cli("runs", "cancel", "held-2", "--wait", "--timeout", "30")
    assert "cancelled run held-2" in done.stdout
    assert "its worker has stopped; run held-2 is cancelled" in done.stdout
    assert tide.runs.get("held-2").lease_expires_at is None
    thread.join(30)
    assert type(outcome[0]).__name__ == "RunCancelled"
