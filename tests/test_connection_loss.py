"""A connection that drops mid-run (a blip, a failover) is re-established; nothing is lost."""

from __future__ import annotations

import psycopg

from tidebase import RunContext, Tidebase


def terminate_tidebase_connections(url: str) -> int:
    """What a Postgres restart or a network cut does to every connection Tidebase holds."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'tidebase' AND datname = current_database()"
        ).fetchall()
    return len(rows)


def test_a_run_survives_its_connection_being_killed_between_steps(
    tide: Tidebase, tidebase_database_url: str
) -> None:
    ran: list[str] = []

    def wf(run: RunContext, input: None) -> list[str]:
        out = [run.step("a", lambda: ran.append("a") or "a")]
        assert terminate_tidebase_connections(tidebase_database_url) >= 1
        out.append(run.step("b", lambda: ran.append("b") or "b"))
        assert terminate_tidebase_connections(tidebase_database_url) >= 1
        out.append(run.step("c", lambda: ran.append("c") or "c"))
        return out

    assert tide.run("wf", wf, run_id="blip") == ["a", "b", "c"]
    assert ran == ["a", "b", "c"]
    events = tide.runs.events("blip")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.type for e in events] == ["run.started"] + ["step.completed"] * 3 + ["run.completed"]
    assert tide.runs.get("blip").attempt == 1
