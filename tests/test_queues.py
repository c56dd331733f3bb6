"""Queues and workers (issue 13): enqueue, dedupe, claims, retries, deadlines, caps, drain."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tidebase import RunContext, Tidebase
from tidebase_core import registry
from tidebase_core._sync.queue_store import QueueStore
from tidebase_core._sync.reconciler import Reconciler
from tidebase_core._sync.worker import Worker
from tidebase_core.retry import backoff_seconds


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@contextmanager
def working(tide: Tidebase, queues: list[str] | None = None, **options: Any) -> Iterator[None]:
    stop = threading.Event()
    errors: list[BaseException] = []

    def go() -> None:
        try:
            tide.work(queues or ["default"], stop=stop, poll_s=0.02, **options)
        except BaseException as exc:  # surfaced by the test below
            errors.append(exc)

    thread = threading.Thread(target=go)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive(), "the worker did not drain"
        assert not errors, errors


def status(tide: Tidebase, run_id: str) -> str:
    return str(tide.runs.get(run_id).status)


def test_enqueue_returns_a_queued_run(tide: Tidebase) -> None:
    e = tide.enqueue("nothing-registered", input={"x": 1}, priority=3)
    assert e.run.status == "queued" and not e.deduplicated
    assert e.run.input == {"x": 1}
    [q] = tide.queues.list()
    assert (q.name, q.depth, q.running) == ("default", 1, 0)
    assert [ev.type for ev in tide.runs.events(e.run.run_id)] == ["run.enqueued"]


def test_a_worker_runs_a_registered_workflow(tide: Tidebase) -> None:
    @tide.workflow("add")
    def add(run: RunContext, input: dict[str, int]) -> int:
        return run.step("sum", lambda: input["a"] + input["b"])

    e = tide.enqueue("add", input={"a": 2, "b": 3})
    with working(tide):
        wait_for(lambda: status(tide, e.run.run_id) == "completed", what="completion")
    run = tide.runs.get(e.run.run_id)
    assert run.result == 5 and run.attempt == 1
    types = [ev.type for ev in tide.runs.events(e.run.run_id)]
    assert types == ["run.enqueued", "run.claimed", "step.completed", "run.completed"]


def test_decorated_workflow_shapes_register_by_name(tide: Tidebase) -> None:
    import tidebase

    @tidebase.workflow(name="greet")
    def greet(who: str) -> str:
        return f"hello {who}"

    @tide.workflow(name="shout")
    def shout(run: RunContext, input: str) -> str:
        return input.upper()

    assert registry.lookup("greet").fn is not None
    a = tide.enqueue("greet", input={"who": "tide"})
    b = tide.enqueue("shout", input="hey")
    with working(tide):
        wait_for(lambda: status(tide, b.run.run_id) == "completed")
        wait_for(lambda: status(tide, a.run.run_id) == "completed")
    assert tide.runs.get(a.run.run_id).result == "hello tide"
    assert tide.runs.get(b.run.run_id).result == "HEY"
    assert greet("x") == "hello x"  # still callable as a workflow of its own


def test_unknown_workflow_name_fails_the_run_clearly(tide: Tidebase) -> None:
    e = tide.enqueue("no-such-workflow")
    with working(tide):
        wait_for(lambda: status(tide, e.run.run_id) == "failed")
    run = tide.runs.get(e.run.run_id)
    assert "no workflow named 'no-such-workflow' is registered" in run.error["message"]
    assert run.failure_class == "max_retries"
    with pytest.raises(registry.UnknownWorkflow, match=r"@tide\.workflow"):
        registry.lookup("no-such-workflow")


def test_dedupe_returns_the_active_run_and_frees_the_key_after(tide: Tidebase) -> None:
    @tide.workflow("dd")
    def dd(run: RunContext, input: Any) -> str:
        return "done"

    first = tide.enqueue("dd", dedupe_key="k")
    again = tide.enqueue("dd", dedupe_key="k")
    other_queue = tide.enqueue("dd", dedupe_key="k", queue="other")
    assert again.deduplicated and again.run.run_id == first.run.run_id
    assert not other_queue.deduplicated
    with working(tide):
        wait_for(lambda: status(tide, first.run.run_id) == "completed")
    fresh = tide.enqueue("dd", dedupe_key="k")
    assert not fresh.deduplicated and fresh.run.run_id != first.run.run_id


def test_dedupe_then_cancel_frees_the_key(tide: Tidebase) -> None:
    first = tide.enqueue("dd2", dedupe_key="job-1")
    assert tide.enqueue("dd2", dedupe_key="job-1").deduplicated
    assert tide.runs.cancel(first.run.run_id, reason="changed my mind").status == "cancelled"
    second = tide.enqueue("dd2", dedupe_key="job-1")
    assert not second.deduplicated and second.run.run_id != first.run.run_id


def test_delay_and_run_at_hold_a_run_back(tide: Tidebase) -> None:
    @tide.workflow("later")
    def later(run: RunContext, input: Any) -> str:
        return "ran"

    held = tide.enqueue("later", delay_s=3600)
    at = tide.enqueue("later", run_at=datetime.now(UTC) + timedelta(hours=1))
    ready = tide.enqueue("later", run_at="2000-01-01T00:00:00Z")
    with working(tide):
        wait_for(lambda: status(tide, ready.run.run_id) == "completed")
    assert status(tide, held.run.run_id) == "queued"
    assert status(tide, at.run.run_id) == "queued"


def test_priority_then_run_at_order_claims(tide: Tidebase) -> None:
    order: list[str] = []

    @tide.workflow("ordered")
    def ordered(run: RunContext, input: dict[str, str]) -> None:
        order.append(input["tag"])

    tide.enqueue("ordered", input={"tag": "low-1"}, priority=0)
    tide.enqueue("ordered", input={"tag": "high"}, priority=10)
    tide.enqueue("ordered", input={"tag": "low-2"}, priority=0)
    tide.enqueue("ordered", input={"tag": "mid"}, priority=5)
    with working(tide, concurrency=1):
        wait_for(lambda: len(order) == 4)
    assert order == ["high", "mid", "low-1", "low-2"]


def test_failures_retry_with_backoff_up_to_max_attempts(
    tide: Tidebase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEBASE_RETRY_BASE_SECONDS", "0.2")
    starts: list[float] = []

    @tide.workflow("flaky")
    def flaky(run: RunContext, input: Any) -> None:
        starts.append(time.monotonic())
        raise ValueError(f"boom {len(starts)}")

    e = tide.enqueue("flaky", max_attempts=3)
    with working(tide):
        wait_for(lambda: status(tide, e.run.run_id) == "failed", what="final failure")
    run = tide.runs.get(e.run.run_id)
    assert run.failure_class == "max_retries" and run.attempt == 3
    assert run.error["message"] == "boom 3"
    assert len(starts) == 3
    # 0.2 s then 0.4 s of backoff between the attempts
    assert starts[1] - starts[0] >= 0.2 and starts[2] - starts[1] >= 0.4
    types = [ev.type for ev in tide.runs.events(e.run.run_id)]
    assert types.count("run.requeued") == 2 and types[-1] == "run.failed"


def test_backoff_schedule_is_5s_doubling_capped_at_5_minutes() -> None:
    assert [backoff_seconds(n, 5.0) for n in (1, 2, 3, 4)] == [5.0, 10.0, 20.0, 40.0]
    assert backoff_seconds(10, 5.0) == 300.0


def test_a_retry_succeeds_and_replays_completed_steps(
    tide: Tidebase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEBASE_RETRY_BASE_SECONDS", "0.05")
    executed: list[str] = []

    @tide.workflow("second-time-lucky")
    def lucky(run: RunContext, input: Any) -> str:
        run.step("first", lambda: executed.append("first"))
        if run.attempt < 2:
            raise RuntimeError("transient")
        return "ok"

    e = tide.enqueue("second-time-lucky", max_attempts=2)
    with working(tide):
        wait_for(lambda: status(tide, e.run.run_id) == "completed")
    assert executed == ["first"]
    assert tide.runs.get(e.run.run_id).attempt == 2


def test_deadline_cancels_a_queued_and_a_running_run(tide: Tidebase) -> None:
    queued = tide.enqueue("nobody-works-this", queue="unworked", deadline_s=0.05)
    release = threading.Event()

    @tide.workflow("slow")
    def slow(run: RunContext, input: Any) -> str:
        run.step("wait", lambda: release.wait(30))
        run.step("after", lambda: "never")
        return "done"

    running = tide.enqueue("slow", deadline_s=1.0)
    with working(tide, reconcile=False):
        wait_for(lambda: status(tide, running.run.run_id) == "running")
        reconciler = Reconciler(tide)
        wait_for(lambda: reconciler.tick() and status(tide, running.run.run_id) == "cancelled")
        release.set()
    for run_id in (queued.run.run_id, running.run.run_id):
        run = tide.runs.get(run_id)
        assert run.status == "cancelled"
    assert [s.name for s in tide.runs.steps(running.run.run_id) if s.status == "completed"] == []
    events = tide.runs.events(queued.run.run_id)
    assert events[-1].type == "run.cancelled" and events[-1].payload == {"reason": "deadline"}


def test_queue_caps_configure_and_list(tide: Tidebase) -> None:
    info = tide.queues.configure("emails", concurrency=2, rate_per_minute=30)
    assert (info.concurrency, info.rate_per_minute, info.depth) == (2, 30, 0)
    tide.enqueue("x", queue="emails")
    [q] = [q for q in tide.queues.list() if q.name == "emails"]
    assert q.depth == 1
    with pytest.raises(ValueError, match="concurrency must be an int >= 1"):
        tide.queues.configure("emails", concurrency=0)
    with pytest.raises(ValueError, match="invoke_url must be an http"):
        tide.queues.configure("emails", invoke_url="ftp://x")


def test_rate_cap_holds_within_a_minute(tide: Tidebase) -> None:
    @tide.workflow("rated")
    def rated(run: RunContext, input: Any) -> None:
        return None

    tide.queues.configure("rated", rate_per_minute=3)
    runs = [tide.enqueue("rated", queue="rated").run.run_id for _ in range(5)]
    with working(tide, ["rated"], concurrency=2):
        wait_for(lambda: sum(status(tide, r) == "completed" for r in runs) == 3)
        time.sleep(0.5)  # not a synchronisation: a chance for a wrong fourth claim to show
        assert sum(status(tide, r) == "completed" for r in runs) == 3
    assert sum(status(tide, r) == "queued" for r in runs) == 2


def test_bad_enqueue_input_is_a_clear_error(tide: Tidebase) -> None:
    with pytest.raises(ValueError, match="delay_s or run_at, not both"):
        tide.enqueue("x", delay_s=1, run_at="2030-01-01T00:00:00Z")
    with pytest.raises(ValueError, match="max_attempts must be an int >= 1"):
        tide.enqueue("x", max_attempts=0)
    with pytest.raises(ValueError, match="run_at 'soon' is not an ISO 8601 time"):
        tide.enqueue("x", run_at="soon")
    with pytest.raises(ValueError, match="at least one queue"):
        Worker(tide, [])
    with pytest.raises(ValueError, match=r"max_connections=10; create it with Tidebase\(max_"):
        Worker(tide, ["default"], concurrency=10)


def test_sigterm_style_stop_drains_the_run_in_hand(tide: Tidebase) -> None:
    started = threading.Event()
    release = threading.Event()

    @tide.workflow("drain")
    def drain(run: RunContext, input: Any) -> str:
        started.set()
        run.step("long", lambda: release.wait(30))
        return "finished"

    e = tide.enqueue("drain")
    waiting = tide.enqueue("drain")
    stop = threading.Event()
    thread = threading.Thread(
        target=tide.work, args=(["default"],), kwargs={"stop": stop, "poll_s": 0.02}
    )
    thread.start()
    assert started.wait(30)
    stop.set()  # what SIGTERM does in tidebase_core.worker.main
    release.set()
    thread.join(30)
    assert not thread.is_alive()
    finished = [r for r in (e.run.run_id, waiting.run.run_id) if status(tide, r) == "completed"]
    assert len(finished) == 1  # the one in hand finished; nothing more was claimed
    assert {status(tide, e.run.run_id), status(tide, waiting.run.run_id)} == {
        "completed",
        "queued",
    }


def test_worker_log_says_claimed_finished_retried_gave_up(
    tide: Tidebase, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEBASE_RETRY_BASE_SECONDS", "0.01")

    @tide.workflow("logged-ok")
    def ok(run: RunContext, input: Any) -> int:
        return 1

    @tide.workflow("logged-bad")
    def bad(run: RunContext, input: Any) -> int:
        raise KeyError("nope")

    good = tide.enqueue("logged-ok")
    failing = tide.enqueue("logged-bad", max_attempts=2)
    with caplog.at_level("INFO", logger="tidebase.worker"), working(tide):
        wait_for(lambda: status(tide, failing.run.run_id) == "failed")
        wait_for(lambda: status(tide, good.run.run_id) == "completed")
    text = caplog.text
    assert f"claimed run {good.run.run_id}" in text
    assert f"finished run {good.run.run_id}" in text
    assert f"run {failing.run.run_id} failed attempt 1/2" in text and "retrying in" in text
    assert f"gave up on run {failing.run.run_id} after 2 attempt(s)" in text


def test_a_gate_in_a_queued_run_parks_and_requeues_when_decided(tide: Tidebase) -> None:
    @tide.workflow("approval")
    def approval(run: RunContext, input: Any) -> str:
        d = run.gate("ok", "Ship it?", wait=False)
        return "shipped" if d.approved else "held"

    e = tide.enqueue("approval")
    with working(tide):
        wait_for(lambda: status(tide, e.run.run_id) == "waiting")
        tide.gates.resolve(e.run.run_id, "ok", "approved", actor="ana")
        wait_for(lambda: status(tide, e.run.run_id) == "completed")
    assert tide.runs.get(e.run.run_id).result == "shipped"


def test_queue_store_claim_respects_concurrency_cap(tide: Tidebase) -> None:
    from tidebase_core.owner import Owner

    tide.queues.configure("capped", concurrency=1)
    for _ in range(2):
        tide.enqueue("x", queue="capped")
    with tide._store.connection() as db:
        qs = QueueStore(db)
        o = Owner.new()
        kw = dict(queue="capped", host=o.host, pid=o.pid, started=o.started, lease=60.0)
        assert qs.claim_queued(token=o.token, **kw) is not None
        assert qs.claim_queued(token=Owner.new().token, **kw) is None
