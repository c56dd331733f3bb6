"""DESIGN §6: a step's first execution is one round trip; a replay loads a run in one query."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import sql

from tidebase import RunContext, Tidebase
from tidebase_core._sync.store import StoreConnection


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every statement the engine sends (all SQL goes through StoreConnection._send)."""
    sent: list[str] = []
    original = StoreConnection._send

    def counting(self: StoreConnection, query: str, params: object) -> object:
        sent.append(query.split()[0] + " " + query.split()[1])
        return original(self, query, params)  # type: ignore[arg-type]

    monkeypatch.setattr(StoreConnection, "_send", counting)
    return sent


def noop_steps(n: int):  # type: ignore[no-untyped-def]
    def wf(run: RunContext, input: None) -> int:
        for _ in range(n):
            run.step("noop", lambda: None)
        if run.attempt == 1:
            raise RuntimeError("crash after the steps")
        return n

    return wf


def test_first_execution_costs_one_statement_per_step(
    tide: Tidebase, statements: list[str]
) -> None:
    tide.open()
    tide._heartbeat.stop()  # keep lease renewals out of the count
    with pytest.raises(RuntimeError):
        tide.run("wf", noop_steps(1000), run_id="r")
    # claim + 1000 checkpoints + the failure record
    assert len(statements) == 1 + 1000 + 1


def test_replaying_a_1000_step_run_costs_two_statements(
    tide: Tidebase, statements: list[str]
) -> None:
    with pytest.raises(RuntimeError):
        tide.run("wf", noop_steps(1000), run_id="r")
    tide._heartbeat.stop()
    statements.clear()
    assert tide.run("wf", noop_steps(1000), run_id="r") == 1000
    # claim, load every checkpoint, complete: nothing per step
    assert len(statements) == 3
    statements.clear()
    # completed: the refused claim and the read of the stored result
    assert tide.run("wf", noop_steps(1000), run_id="r") == 1000
    assert len(statements) == 2


def test_a_new_run_that_makes_no_durable_operation_costs_one_statement_and_one_row(
    tide: Tidebase, statements: list[str], tidebase_database_url: str, tidebase_schema: str
) -> None:
    tide.open()
    tide._heartbeat.stop()
    assert tide.run("wf", lambda run, _: "done") == "done"
    assert len(statements) == 1  # created completed, both log entries with it
    with psycopg.connect(tidebase_database_url) as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT (SELECT count(*) FROM {s}.runs), (SELECT count(*) FROM {s}.events)"
            ).format(s=sql.Identifier(tidebase_schema))
        ).fetchone()
    assert rows == (1, 0)  # its run.started and run.completed are in its row
    statements.clear()
    # With an id given the run may exist: the claim comes first, then the completion.
    assert tide.run("wf", lambda run, _: "done", run_id="given") == "done"
    assert len(statements) == 2


def test_a_new_runs_steps_cost_what_they_cost_with_an_id(
    tide: Tidebase, statements: list[str]
) -> None:
    tide.open()
    tide._heartbeat.stop()
    with pytest.raises(RuntimeError):
        tide.run("wf", noop_steps(1000))
    # the claim (sent before the first step's body) + 1000 checkpoints + the failure record
    assert len(statements) == 1 + 1000 + 1
