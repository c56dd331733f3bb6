"""Cron schedules: set/list/delete, clear errors, and one fire per time across reconcilers."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tidebase import Tidebase
from tidebase_core._sync.reconciler import Reconciler


def test_set_list_delete(tide: Tidebase) -> None:
    now = datetime(2026, 1, 1, 2, 59, 30, tzinfo=UTC)
    s = tide.schedules.set(
        "nightly", cron="0 3 * * *", workflow_name="report", input={"k": 1}, now=now
    )
    assert (s.name, s.cron, s.workflow_name, s.queue, s.enabled) == (
        "nightly",
        "0 3 * * *",
        "report",
        "default",
        True,
    )
    assert s.next_fire_at == datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    # re-setting the same cron keeps its place; a new cron moves it
    again = tide.schedules.set("nightly", cron="0 3 * * *", workflow_name="report", now=now)
    assert again.next_fire_at == s.next_fire_at
    moved = tide.schedules.set("nightly", cron="30 4 * * *", workflow_name="report", now=now)
    assert moved.next_fire_at == datetime(2026, 1, 1, 4, 30, tzinfo=UTC)
    assert [x.name for x in tide.schedules.list()] == ["nightly"]
    assert tide.schedules.delete("nightly") is True
    assert tide.schedules.delete("nightly") is False
    assert tide.schedules.list() == []


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("0 3 * *", "has 4 fields; Tidebase takes 5"),
        ("* * * * * *", "has 6 fields"),
        ("61 * * * *", "is not a valid cron expression"),
        ("every day", "has 2 fields"),
        ("*/0 * * * *", "has a step of 0 in its minute field"),
        ("0 9 * * 1-5/0", "has a step of 0 in its day-of-week field"),
    ],
)
def test_invalid_cron_is_a_clear_error(tide: Tidebase, cron: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tide.schedules.set("bad", cron=cron, workflow_name="report")
    assert tide.schedules.list() == []


def test_two_reconcilers_ten_cron_periods_each_fire_once(tide: Tidebase) -> None:
    """Time is driven through an injected clock: both reconcilers tick together at every
    instant of ten 5-minute periods (and twice more per period, late)."""
    start = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
    tide.schedules.set(
        "every5", cron="*/5 * * * *", workflow_name="report", input={"x": 1}, now=start
    )
    other = Tidebase(tide.settings.database_url, schema=tide.settings.schema).open()
    try:
        reconcilers = [Reconciler(tide), Reconciler(other)]
        fired: list[Any] = []
        for period in range(10):
            for late in (0, 1, 90):  # at the fire time, 1 s late, 90 s late
                now = start + timedelta(minutes=5 * period + 4, seconds=30 + late)
                barrier = threading.Barrier(2)

                def tick(r: Reconciler, now: datetime = now, barrier: Any = barrier) -> None:
                    barrier.wait()
                    report = r.tick(now)
                    if report is not None:
                        fired.extend(report.fired)

                threads = [threading.Thread(target=tick, args=(r,)) for r in reconcilers]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(30)
    finally:
        other.close()
    expected = [start.replace(second=0) + timedelta(minutes=5 * (p + 1)) for p in range(10)]
    assert sorted(f[1] for f in fired) == expected
    runs = tide.runs.list(status="queued", limit=100)
    assert len(runs) == 10
    assert sorted(r.metadata["fire_time"] for r in runs) == [
        t.isoformat().replace("+00:00", "Z") for t in expected
    ]
    assert {r.workflow_name for r in runs} == {"report"} and all(r.input == {"x": 1} for r in runs)
    [schedule] = tide.schedules.list()
    assert schedule.last_fired_at == expected[-1]


def test_a_fired_schedule_runs_on_a_worker(tide: Tidebase) -> None:
    done = threading.Event()

    @tide.workflow("tick-job")
    def job(run: Any, input: Any) -> str:
        done.set()
        return "ran"

    past = datetime.now(UTC) - timedelta(minutes=2)
    tide.schedules.set("minutely", cron="* * * * *", workflow_name="tick-job", now=past)
    stop = threading.Event()
    worker = threading.Thread(target=tide.work, kwargs={"stop": stop, "poll_s": 0.02})
    worker.start()
    try:
        assert done.wait(30)
    finally:
        stop.set()
        worker.join(30)
    [run] = tide.runs.list(workflow="tick-job")
    assert run.metadata["schedule"] == "minutely"
