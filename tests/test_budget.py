"""Guarantee 13: a run's recorded spend never passes its budget by more than the model calls in
flight, across crashes, attempts and child runs (DESIGN §9)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tidebase import Budget, RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import BudgetExceeded, RunNotFound

CALL = Decimal("0.30")  # dollars per scripted model call
CAP = Decimal("1.00")


def agent_loop(calls: int = 10, cost: Decimal = CALL, agent: str = "researcher"):  # type: ignore[no-untyped-def]
    """A workflow whose agent makes ``calls`` model calls (3 × the cap by default), each a step
    declared spends=True that records its usage."""

    def wf(run: RunContext, input: Any) -> int:
        for i in range(calls):

            def call(i: int = i) -> int:
                run.usage.record(
                    provider="scripted",
                    model="m1",
                    input_tokens=100 + i,
                    output_tokens=10,
                    cost_usd=cost,
                    agent=agent,
                )
                return i

            run.step("call", call, spends=True)
        return calls

    return wf


def spend_of(tide: Tidebase, run_id: str, include_children: bool = False) -> Decimal:
    return tide.usage.summary(run_id, include_children=include_children).cost_usd


def test_a_loop_stops_within_one_call_of_its_cap(tide: Tidebase) -> None:
    with pytest.raises(BudgetExceeded) as raised:
        tide.run("agent", agent_loop(), run_id="b1", budget=Budget(usd=CAP))
    # checks before calls 1-4 saw 0, 0.3, 0.6, 0.9 < 1.0; before call 5 it saw 1.2
    assert spend_of(tide, "b1") == 4 * CALL
    assert spend_of(tide, "b1") < CAP + CALL
    err = raised.value
    assert err.holder == "b1" and err.step == "call#5" and err.caps == ["usd"]
    assert err.decision == "manual_review"
    assert "tide.runs.set_budget('b1'" in str(err) and "is usd=1," in str(err)
    run = tide.runs.get("b1")
    assert run.status == "failed" and run.failure_class == "budget"
    assert run.budget == Budget(usd=CAP) and run.budget_run_id == "b1"
    assert run.spend is not None and run.spend.usd == 4 * CALL and run.spend.calls == 4
    assert [s.name for s in tide.runs.steps("b1")] == ["call", "call#2", "call#3", "call#4"]
    failed = tide.runs.events("b1")[-1]
    assert failed.type == "run.failed"
    assert failed.payload["failure_class"] == "budget"
    assert failed.payload["decision"] == "manual_review"
    assert failed.payload["step"] == "call#5"


@pytest.mark.slow
def test_a_sigkill_mid_call_then_resume_still_stops_within_one_call(
    spawn,  # type: ignore[no-untyped-def]
    tide: Tidebase,
    tmp_path: Path,
) -> None:
    log = tmp_path / "calls.log"
    # Killed inside call 3, after it recorded its $0.30 but before its checkpoint: the spend
    # was real, the step was not done.
    crashed = spawn("bk", log, module="tests.budget_worker", BLOCK_AT="call#3")
    crashed.expect("IN call#3")
    crashed.kill()
    assert spend_of(tide, "bk") == 3 * CALL

    resumed = spawn("bk", log, module="tests.budget_worker")
    line = resumed.finish()
    assert line.startswith("ERROR BudgetExceeded"), line
    # attempt 2 replays calls 1-2 (no check, no spend), runs call 3 again (0.9 < 1.0), and is
    # stopped before call 4 at $1.20: the crashed attempt's spend counted.
    calls = [entry.split()[0] for entry in log.read_text().splitlines()]
    assert calls == ["call", "call#2", "call#3", "call#3"]
    assert spend_of(tide, "bk") == 4 * CALL < CAP + CALL
    run = tide.runs.get("bk")
    assert (run.status, run.failure_class, run.attempt) == ("failed", "budget", 2)
    by_attempt = tide.usage.summary("bk").by_attempt
    assert [(a.attempt, a.outcome, a.calls, a.cost_usd) for a in by_attempt] == [
        (1, "crashed", 3, 3 * CALL),
        (2, "failed", 1, CALL),
    ]
    assert by_attempt[0].crashed and not by_attempt[1].crashed

    # Raise the cap and invoke again: it continues where it stopped.
    tide.runs.set_budget("bk", Budget(usd=Decimal("2.00")))
    again = spawn("bk", log, module="tests.budget_worker", CAP="2.00")
    assert again.finish().startswith("ERROR BudgetExceeded")
    # calls 4, 5, 6 take it from 1.2 to 2.1; stopped before call 7
    assert spend_of(tide, "bk") == 7 * CALL
    assert len(tide.runs.steps("bk")) == 6


def test_set_budget_then_reinvoking_continues_and_none_removes_it(tide: Tidebase) -> None:
    with pytest.raises(BudgetExceeded):
        tide.run("agent", agent_loop(), run_id="b2", budget=Budget(usd=CAP))
    run = tide.runs.set_budget("b2", usd=Decimal("1.50"))  # the DESIGN's keyword spelling
    assert run.budget == Budget(usd=Decimal("1.50")) and run.spend is not None
    with pytest.raises(BudgetExceeded):  # 1.2 → 1.5: stopped before call 6
        tide.run("agent", agent_loop(), run_id="b2")
    assert spend_of(tide, "b2") == 5 * CALL
    tide.runs.set_budget("b2", None)
    assert tide.run("agent", agent_loop(), run_id="b2") == 10
    run = tide.runs.get("b2")
    assert run.status == "completed" and run.budget is None and run.spend is None
    assert spend_of(tide, "b2") == 10 * CALL
    types = [e.type for e in tide.runs.events("b2")]
    assert types.count("budget.set") == 2


def test_budget_given_to_an_existing_run_does_not_replace_its_stored_one(tide: Tidebase) -> None:
    with pytest.raises(BudgetExceeded):
        tide.run("agent", agent_loop(), run_id="b3", budget=Budget(usd=CAP))
    tide.runs.set_budget("b3", Budget(usd=Decimal("100")))
    # re-invoked the way a decorated workflow would, with its original budget: the raised one
    # stays (the budget= argument applies when a run is created)
    assert tide.run("agent", agent_loop(), run_id="b3", budget=Budget(usd=CAP)) == 10


def test_budget_warning_is_emitted_once_at_80_percent(tide: Tidebase) -> None:
    with pytest.raises(BudgetExceeded):
        tide.run("agent", agent_loop(), run_id="w1", budget=Budget(usd=CAP, tokens=10_000))
    warnings = [e for e in tide.runs.events("w1") if e.type == "budget.warning"]
    assert len(warnings) == 1
    (warning,) = warnings
    # the check before call 4 saw $0.90 of $1.00: the first at or past 80 %
    assert warning.payload["budget"] == {"usd": "1.00", "tokens": 10_000}
    assert Decimal(warning.payload["spend"]["usd"]) == 3 * CALL
    assert warning.payload["spend"]["calls"] == 3
    assert warning.payload["run_id"] == "w1"
    # it comes before the 4th call's usage in the log, where subscribers see it
    types = [e.type for e in tide.runs.events("w1")]
    assert types.index("budget.warning") < len(types) - 1 - types[::-1].index("usage.recorded")

    # a resumed attempt does not warn again; a new budget may
    with pytest.raises(BudgetExceeded):
        tide.run("agent", agent_loop(), run_id="w1")
    assert [e.type for e in tide.runs.events("w1")].count("budget.warning") == 1
    tide.runs.set_budget("w1", Budget(usd=Decimal("1.50")))
    with pytest.raises(BudgetExceeded):
        tide.run("agent", agent_loop(), run_id="w1")
    assert [e.type for e in tide.runs.events("w1")].count("budget.warning") == 2


def test_subscribers_see_the_warning_live(tide: Tidebase) -> None:
    import threading

    seen: list[str] = []

    def follow() -> None:
        for event in tide.runs.subscribe("w2"):
            seen.append(event.type)

    created = tide.runs.create("agent", run_id="w2", budget=Budget(usd=CAP))
    assert created.budget_holders == ["w2"]  # so the subscriber has a run to follow
    follower = threading.Thread(target=follow)
    follower.start()
    with pytest.raises(BudgetExceeded):
        tide.run("agent", agent_loop(), run_id="w2")
    follower.join(30)
    assert not follower.is_alive()
    assert seen.count("budget.warning") == 1 and seen[-1] == "run.failed"


def test_token_caps_each_count(tide: Tidebase) -> None:
    # 110 tokens per call (100 in, 10 out): output_tokens=25 is reached after 3 calls
    with pytest.raises(BudgetExceeded) as raised:
        tide.run("agent", agent_loop(), run_id="t1", budget=Budget(output_tokens=25))
    assert raised.value.caps == ["output_tokens"]
    assert tide.usage.summary("t1").output_tokens == 30
    with pytest.raises(BudgetExceeded) as raised:
        tide.run("agent", agent_loop(), run_id="t2", budget=Budget(tokens=300, input_tokens=10**6))
    assert raised.value.caps == ["tokens"]
    assert tide.usage.summary("t2").total_tokens == 3 * 110 + 3  # inputs are 100, 101, 102


def test_a_run_without_a_budget_never_checks(tide: Tidebase) -> None:
    assert tide.run("agent", agent_loop(), run_id="free") == 10
    run = tide.runs.get("free")
    assert run.budget is None and run.budget_holders == [] and run.spend is None


def child_loop(calls: int, cost: Decimal):  # type: ignore[no-untyped-def]
    def child(run: RunContext, input: Any) -> int:
        return int(agent_loop(calls, cost, agent=f"sub-{input}")(run, input))

    return child


def test_a_fanout_of_four_children_shares_the_parents_budget(tide: Tidebase) -> None:
    cost = Decimal("0.10")

    def parent(run: RunContext, input: Any) -> list[int]:
        return run.fanout(
            "subagents",
            [(f"c{i}", child_loop(10, cost), i) for i in range(4)],
            max_parallel=4,
        )

    with pytest.raises(BudgetExceeded) as raised:
        tide.run("parent", parent, run_id="p", budget=Budget(usd=CAP))
    assert raised.value.holder == "p"
    total = spend_of(tide, "p", include_children=True)
    # the four children together spent at least the cap, and passed it by at most the calls in
    # flight (one per child)
    assert CAP <= total <= CAP + 4 * cost
    assert spend_of(tide, "p") == 0  # the parent itself made no call
    children = tide.runs.children("p")
    assert len(children) == 4
    for child in children:
        assert child.status == "failed" and child.failure_class == "budget"
        assert child.budget_holders == ["p"]
        info = tide.runs.get(child.run_id)
        assert info.budget_run_id == "p" and info.budget == Budget(usd=CAP)
        assert info.spend is not None and info.spend.usd == total
    assert tide.runs.get("p").failure_class == "budget"

    # one budget for the whole tree: raising the parent's lets every child finish
    tide.runs.set_budget("p", Budget(usd=Decimal("10")))
    assert tide.run("parent", parent, run_id="p") == [10, 10, 10, 10]
    assert spend_of(tide, "p", include_children=True) == 40 * cost
    summary = tide.usage.summary("p", include_children=True)
    assert [(a.agent, a.calls) for a in summary.by_agent] == [(f"sub-{i}", 10) for i in range(4)]


@pytest.mark.asyncio
async def test_a_gather_of_spending_steps_overshoots_by_at_most_the_calls_in_flight(
    atide: AsyncTidebase,
) -> None:
    cost = Decimal("0.10")
    in_flight = 5

    async def wf(run: AsyncRunContext, input: Any) -> int:
        rounds = 0
        for _ in range(10):

            async def call() -> None:
                await asyncio.sleep(0.01)  # the calls overlap
                await run.usage.record(model="m", input_tokens=1, cost_usd=cost, agent="a")

            await asyncio.gather(*(run.step("call", call, spends=True) for _ in range(in_flight)))
            rounds += 1
        return rounds

    with pytest.raises(BudgetExceeded):
        await atide.run("gather", wf, run_id="g", budget=Budget(usd=Decimal("0.75")))
    records = await atide.usage.records("g")
    spent = sum((r.cost_usd or Decimal(0) for r in records), Decimal(0))
    assert Decimal("0.75") <= spent <= Decimal("0.75") + in_flight * cost
    # the calls that started after the ledger reached the cap: at most those already in flight
    running = Decimal(0)
    after_cap = 0
    for r in records:
        if running >= Decimal("0.75"):
            after_cap += 1
        running += r.cost_usd or Decimal(0)
    assert after_cap < in_flight
    # concurrent checks past 80 % warned once
    events = await atide.runs.events("g")
    assert [e.type for e in events].count("budget.warning") == 1


def test_summaries_by_agent_attempt_step_and_model_are_exact(tide: Tidebase) -> None:
    # (step, agent, model, input, output, cost): distinct counts per call
    calls = [
        ("plan", "planner", "m-large", 1000, 200, "0.0500"),
        ("plan", "planner", "m-small", 300, 30, "0.0030"),
        ("write", "writer", "m-large", 2000, 800, "0.1200"),
    ]

    def wf(run: RunContext, input: Any) -> str:
        for step in ("plan", "write"):

            def body(step: str = step) -> str:
                for s, agent, model, i, o, c in calls:
                    if s == step:
                        run.usage.record(
                            provider="p",
                            model=model,
                            input_tokens=i,
                            output_tokens=o,
                            cost_usd=c,
                            agent=agent,
                        )
                if step == "write" and run.attempt == 1:
                    raise RuntimeError("the writer's first attempt fails after spending")
                return step

            run.step(step, body, spends=True)
        run.usage.record(model="m-small", input_tokens=7, cost_usd="0.0001")  # no agent, no step
        return "done"

    with pytest.raises(RuntimeError):
        tide.run("report", wf, run_id="s1", budget=Budget(usd=10))
    assert tide.run("report", wf, run_id="s1") == "done"

    summary = tide.usage.summary("s1")
    assert (summary.calls, summary.input_tokens, summary.output_tokens) == (5, 5307, 1830)
    assert summary.cost_usd == Decimal("0.2931")
    # ordered by provider then model, unknown provider last
    assert [(m.provider, m.model) for m in summary.by_model] == [
        ("p", "m-large"),
        ("p", "m-small"),
        (None, "m-small"),
    ]
    models = {
        (m.provider, m.model): (m.calls, m.input_tokens, m.cost_usd) for m in summary.by_model
    }
    assert models == {
        ("p", "m-large"): (3, 5000, Decimal("0.2900")),
        ("p", "m-small"): (1, 300, Decimal("0.0030")),
        (None, "m-small"): (1, 7, Decimal("0.0001")),
    }
    agents = {
        a.agent: (a.calls, a.input_tokens, a.output_tokens, a.cost_usd) for a in summary.by_agent
    }
    assert agents == {
        "planner": (2, 1300, 230, Decimal("0.0530")),
        "writer": (2, 4000, 1600, Decimal("0.2400")),
        None: (1, 7, 0, Decimal("0.0001")),
    }
    assert [
        (a.run_id, a.attempt, a.outcome, a.calls, a.input_tokens, a.cost_usd)
        for a in summary.by_attempt
    ] == [
        ("s1", 1, "failed", 3, 3300, Decimal("0.1730")),
        ("s1", 2, "completed", 2, 2007, Decimal("0.1201")),
    ]
    assert [(s.step, s.calls, s.input_tokens, s.cost_usd) for s in summary.by_step] == [
        ("plan", 2, 1300, Decimal("0.0530")),
        ("write", 2, 4000, Decimal("0.2400")),
        (None, 1, 7, Decimal("0.0001")),
    ]
    records = tide.usage.records("s1")
    assert [r.agent for r in records] == ["planner", "planner", "writer", "writer", None]


def test_include_children_sums_the_run_tree(tide: Tidebase) -> None:
    def grandchild(run: RunContext, input: Any) -> None:
        run.usage.record(model="m", input_tokens=5, cost_usd="0.005", agent="gc")

    def child(run: RunContext, input: Any) -> None:
        run.usage.record(model="m", input_tokens=20, cost_usd="0.02", agent="c")
        run.child("deeper", grandchild)

    def parent(run: RunContext, input: Any) -> None:
        run.usage.record(model="m", input_tokens=100, cost_usd="0.1", agent="p")
        run.child("sub", child)

    tide.run("tree", parent, run_id="tr")
    assert tide.usage.summary("tr").input_tokens == 100
    whole = tide.usage.summary("tr", include_children=True)
    assert (whole.calls, whole.input_tokens, whole.cost_usd) == (3, 125, Decimal("0.125"))
    assert [(a.run_id, a.attempt, a.outcome, a.calls) for a in whole.by_attempt] == [
        ("tr", 1, "completed", 1),
        ("tr/sub", 1, "completed", 1),
        ("tr/sub/deeper", 1, "completed", 1),
    ]
    assert [a.agent for a in whole.by_agent] == ["c", "gc", "p"]
    assert tide.usage.summary("tr/sub", include_children=True).input_tokens == 25
    # across all runs there is no attempt or step breakdown, but agents are there
    everything = tide.usage.summary()
    assert everything.by_attempt == [] and everything.by_step == []
    assert len(everything.by_agent) == 3


def test_a_child_with_a_budget_of_its_own_is_held_by_both(tide: Tidebase) -> None:
    def top(run: RunContext, input: Any) -> int:
        return int(run.child("sub", agent_loop(), budget=Budget(usd=Decimal("0.50"))))

    # the child's own $0.50 stops it first (it is the nearest budget)
    with pytest.raises(BudgetExceeded) as raised:
        tide.run("top", top, run_id="both", budget=Budget(usd=CAP))
    assert raised.value.holder == "both/sub" and raised.value.run_id == "both/sub"
    assert tide.runs.get("both/sub").budget_holders == ["both/sub", "both"]
    assert spend_of(tide, "both", include_children=True) == 2 * CALL
    # lifting the child's budget leaves the parent's in force
    tide.runs.set_budget("both/sub", None)
    with pytest.raises(BudgetExceeded) as raised:
        tide.run("top", top, run_id="both")
    assert raised.value.holder == "both"
    assert spend_of(tide, "both", include_children=True) == 4 * CALL
    assert tide.runs.get("both").failure_class == "budget"


def test_a_decorated_child_workflow_brings_its_own_budget(tide: Tidebase) -> None:
    import tidebase

    @tidebase.step(spends=True)
    def call_model(i: int) -> int:
        current = tidebase.current_run()
        assert current is not None
        current.usage.record(model="m", input_tokens=10, cost_usd="0.30", agent="sub")
        return i

    @tide.workflow("capped-child", budget=Budget(usd=Decimal("0.50")))
    def capped(n: int) -> int:
        return sum(call_model(i) for i in range(n))

    @tide.workflow("capped-parent")
    def parent_wf() -> int:
        return int(capped(10))

    with pytest.raises(BudgetExceeded) as raised:
        parent_wf.run(run_id="dp")
    assert raised.value.holder.startswith("dp/") and raised.value.caps == ["usd"]
    assert spend_of(tide, "dp", include_children=True) == 2 * CALL


def test_round_trips_none_without_a_budget_one_per_spending_step_with_one(
    tide: Tidebase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tidebase_core._sync.store import StoreConnection

    sent: list[str] = []
    original = StoreConnection._send

    def counting(self: StoreConnection, query: str, params: object) -> object:
        sent.append(query)
        return original(self, query, params)  # type: ignore[arg-type]

    monkeypatch.setattr(StoreConnection, "_send", counting)

    def wf(run: RunContext, input: Any) -> None:
        for _ in range(50):
            run.step("call", lambda: None, spends=True)
        if input == "crash" and run.attempt == 1:
            raise RuntimeError("fails after its steps")

    tide.open()
    tide._heartbeat.stop()
    tide.run("rt", wf, run_id="plain")
    assert len(sent) == 1 + 50 + 1  # claim, 50 checkpoints, completion: no budget, no check
    sent.clear()
    with pytest.raises(RuntimeError):
        tide.run("rt", wf, run_id="capped", input="crash", budget=Budget(tokens=1_000))
    assert len(sent) == 1 + 50 * 2 + 1  # one check per spending step, then the failure
    sent.clear()
    assert tide.run("rt", wf, run_id="capped") is None  # replays its 50 steps: no check
    assert len(sent) == 3  # claim, load the checkpoints, completion


def test_decorated_workflow_and_steps(tide: Tidebase) -> None:
    import tidebase

    @tidebase.step(spends=True)
    def ask(question: str) -> str:
        current = tidebase.current_run()
        assert current is not None
        current.usage.record(model="m", output_tokens=40, cost_usd="0.25", agent="asker")
        return question.upper()

    @tidebase.workflow(name="decorated-budget", budget=Budget(usd=CAP))
    def research(topics: list[str]) -> list[str]:
        return [ask(t) for t in topics]

    with pytest.raises(BudgetExceeded):
        research.run([f"t{i}" for i in range(10)], run_id="dec")
    assert spend_of(tide, "dec") == CAP  # 4 × 0.25 reaches it exactly: the 5th is stopped
    tide.runs.set_budget("dec", None)
    assert len(research.run([f"t{i}" for i in range(10)], run_id="dec")) == 10


def test_a_queued_run_stopped_by_its_budget_is_not_retried_and_recovers(
    tide: Tidebase,
) -> None:
    import threading

    stop = threading.Event()

    @tide.workflow("queued-agent")
    def queued(run: RunContext, input: Any) -> int:
        return int(agent_loop()(run, input))

    e = tide.enqueue("queued-agent", budget=Budget(usd=CAP), max_attempts=3)
    assert e.run.budget_holders == [e.run.run_id]

    def work() -> None:
        tide.work(["default"], stop=stop, poll_s=0.02, reconcile=False)

    worker = threading.Thread(target=work)
    worker.start()
    try:
        _wait(lambda: tide.runs.get(e.run.run_id).status == "failed")
        run = tide.runs.get(e.run.run_id)
        assert (run.failure_class, run.attempt) == ("budget", 1)  # not retried
        assert spend_of(tide, e.run.run_id) == 4 * CALL
        tide.runs.set_budget(e.run.run_id, None)
        tide.runs.recover(e.run.run_id)
        _wait(lambda: tide.runs.get(e.run.run_id).status == "completed")
    finally:
        stop.set()
        worker.join(30)
    assert spend_of(tide, e.run.run_id) == 10 * CALL


def _wait(check: Any, timeout: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.asyncio
async def test_async_check_budget_for_plugins(atide: AsyncTidebase) -> None:
    async def wf(run: AsyncRunContext, input: Any) -> int:
        made = 0
        for _ in range(10):
            await run.check_budget()  # what a plugin does before a model call
            await run.usage.record(model="m", input_tokens=50, agent="plugin-agent")
            made += 1
        return made

    with pytest.raises(BudgetExceeded) as raised:
        await atide.run("plugin", wf, run_id="a1", budget=Budget(input_tokens=120))
    assert raised.value.step is None
    assert (await atide.usage.summary("a1")).input_tokens == 150
    info = await atide.runs.set_budget("a1", Budget(input_tokens=1_000))
    assert info.spend is not None and info.spend.input_tokens == 150
    assert await atide.run("plugin", wf, run_id="a1") == 10  # a new attempt: the loop restarts


def test_bad_budgets_are_refused_with_clear_errors_and_write_nothing(tide: Tidebase) -> None:
    with pytest.raises(ValueError, match="at least one cap"):
        Budget()
    with pytest.raises(ValueError, match="finite amount >= 0"):
        Budget(usd=-1)
    with pytest.raises(ValueError, match="finite amount >= 0"):
        Budget(usd=float("nan"))
    with pytest.raises(ValueError, match="number of dollars"):
        Budget(usd="5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="number of dollars"):
        Budget(usd=True)
    with pytest.raises(ValueError, match="int >= 0"):
        Budget(tokens=-5)
    with pytest.raises(ValueError, match="int >= 0"):
        Budget(tokens=1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"unknown caps \['dollars'\]"):
        Budget.coerce({"usd": 1, "dollars": 2})
    assert Budget.coerce({"tokens": 5}) == Budget(tokens=5)
    assert Budget(usd=0.1).usd == Decimal("0.1")  # the float's shortest repr, not its binary

    with pytest.raises(TypeError, match=r"tidebase\.Budget"):
        tide.run("wf", lambda run, input: 1, run_id="bad", budget=5)  # type: ignore[arg-type]
    with pytest.raises(RunNotFound):
        tide.runs.get("bad")  # nothing was written
    with pytest.raises(TypeError, match="spends must be True or False"):
        tide.run("wf", lambda run, input: run.step("s", lambda: 1, spends="yes"), run_id="bad2")
    with pytest.raises(RunNotFound):
        tide.runs.set_budget("nope", Budget(usd=1))
    with pytest.raises(TypeError, match="set_budget needs the new budget"):
        tide.runs.set_budget("nope")
    with pytest.raises(TypeError, match="not both"):
        tide.runs.set_budget("nope", Budget(usd=1), tokens=5)
    with pytest.raises(TypeError, match=r"tidebase\.Budget"):
        tide.enqueue("wf", budget="1 dollar")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"event type .budget\.warning."):
        tide.run("wf", lambda run, input: run.events.emit("budget.warning", {}), run_id="bad3")


def test_cli_usage_summary_shows_agents_attempts_steps_and_children(
    tide: Tidebase,
    tidebase_database_url: str,
    tidebase_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from tidebase.cli.app import app

    monkeypatch.setenv("TIDEBASE_DATABASE_URL", tidebase_database_url)
    monkeypatch.setenv("TIDEBASE_SCHEMA", tidebase_schema)

    def parent(run: RunContext, input: Any) -> list[int]:
        return run.fanout("subs", [(f"c{i}", child_loop(2, CALL), i) for i in range(2)])

    tide.run("cli-parent", parent, run_id="cp")
    runner = CliRunner()
    alone = runner.invoke(app, ["usage", "summary", "cp"])
    assert alone.exit_code == 0 and "no usage recorded" in alone.stdout
    tree = runner.invoke(app, ["usage", "summary", "cp", "--include-children"])
    assert tree.exit_code == 0, tree.stdout
    for text in ("and its child runs", "by agent", "sub-0", "sub-1", "by attempt", "by step"):
        assert text in tree.stdout
    assert "cp/subs/c0" in tree.stdout and "1.200000" in tree.stdout
    data = json.loads(runner.invoke(app, ["usage", "summary", "cp", "-c", "--json"]).stdout)
    assert Decimal(data["cost_usd"]) == 4 * CALL
    assert [a["agent"] for a in data["by_agent"]] == ["sub-0", "sub-1"]
    assert {a["outcome"] for a in data["by_attempt"]} == {"completed"}
    bad = runner.invoke(app, ["usage", "summary", "--include-children"])
    assert bad.exit_code == 2
    shown = runner.invoke(app, ["runs", "show", "cp/subs/c1"]).stdout
    assert "budget" not in shown  # none governs it
    with pytest.raises(BudgetExceeded):
        tide.run("agent", agent_loop(), run_id="cb", budget=Budget(usd=CAP))
    shown = runner.invoke(app, ["runs", "show", "cb"]).stdout
    assert "usd=1;" in shown and "spent usd=1.2," in shown  # the budget row
    assert "tidebase runs set-budget cb --usd AMOUNT" in shown
    done = runner.invoke(app, ["runs", "set-budget", "cb", "--usd", "2.5"])
    assert done.exit_code == 0 and "budget usd=2.5" in done.stdout
    assert tide.runs.get("cb").budget == Budget(usd=Decimal("2.5"))
    assert runner.invoke(app, ["runs", "set-budget", "cb", "--remove"]).exit_code == 0
    assert tide.runs.get("cb").budget is None
    assert runner.invoke(app, ["runs", "set-budget", "cb"]).exit_code == 2
    assert runner.invoke(app, ["runs", "set-budget", "cb", "--usd", "-1"]).exit_code == 2


def test_usage_written_with_a_checkpoint_carries_its_agent(tide: Tidebase) -> None:
    # the plugins' path: usage rows in the checkpoint's own statement
    def wf(run: RunContext, input: Any) -> str:
        return str(
            run.step(
                "model",
                lambda: "answer",
                spends=True,
                usage=lambda result: [
                    {"model": "m", "input_tokens": 9, "cost_usd": "0.09", "agent": "triage"}
                ],
            )
        )

    tide.run("ck", wf, run_id="ck", budget=Budget(usd=1))
    (record,) = tide.usage.records("ck")
    assert (record.agent, record.step_name, record.input_tokens) == ("triage", "model", 9)
    usage_event = next(e for e in tide.runs.events("ck") if e.type == "usage.recorded")
    assert usage_event.payload["agent"] == "triage"
    assert tide.usage.summary("ck").by_agent[0].agent == "triage"


@pytest.mark.asyncio
async def test_a_sync_decorated_step_in_an_async_workflow_checks_too(atide: AsyncTidebase) -> None:
    import tidebase

    @tidebase.step(spends=True)
    def sync_call(i: int) -> int:  # a sync step: checkpointed on a blocking connection
        current = tidebase.current_run()
        assert current is not None
        from tidebase_core.plugin import record_usage_sync

        record_usage_sync(current, model="m", output_tokens=100, agent="sync")
        return i

    async def wf(run: AsyncRunContext, input: Any) -> int:
        return sum([sync_call(i) for i in range(10)])

    with pytest.raises(BudgetExceeded):
        await atide.run("mixed", wf, run_id="mx", budget=Budget(output_tokens=250))
    assert (await atide.usage.summary("mx")).output_tokens == 300
    info = await atide.runs.get("mx")
    assert info.failure_class == "budget" and info.spend is not None


def test_a_budget_raised_while_the_run_runs_applies_at_its_next_check(tide: Tidebase) -> None:
    def wf(run: RunContext, input: Any) -> int:
        for i in range(10):

            def call(i: int = i) -> None:
                run.usage.record(model="m", input_tokens=1, cost_usd=CALL)
                if i == 2:  # an operator raises the cap while the run is in flight
                    tide.runs.set_budget(run.run_id, Budget(usd=Decimal("2.00")))

            run.step("call", call, spends=True)
        return 10

    with pytest.raises(BudgetExceeded):
        tide.run("live", wf, run_id="live", budget=Budget(usd=CAP))
    assert spend_of(tide, "live") == 7 * CALL  # 2.1: stopped by the raised cap, not the first
