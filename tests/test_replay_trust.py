"""Replay you can trust: every case here once replayed wrong work, duplicated it, or lost it.

Each test is a guarantee: keys that never collide, concurrent branches that replay their own
checkpoints, unsafe retries parked rather than repeated, cancels that stick, contract errors.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pydantic
import pytest

import tidebase
from tests.conftest import executions
from tidebase import ResumeDecision, RetryPolicy, RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import (
    BranchAmbiguous,
    ConnectionReleased,
    GatePending,
    InputMismatch,
    NotSerializable,
    RunCancelled,
    RunNotFound,
    StepTimeout,
)

FAST = RetryPolicy(max_retries=2, initial_delay=0.0)


class Crash(Exception):
    """Ends an attempt the way a dying process would, after what it did was recorded."""


# -- unsafe retries ---------------------------------------------------------------------------


@pytest.mark.slow
def test_an_unsafe_step_killed_during_its_retry_is_parked_not_charged_again(
    spawn: Any, tide: Tidebase, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    worker = spawn("pay-1", log, SCENARIO="retry_charge", BLOCK_AT="charge")
    worker.expect("IN charge")  # the second try charged; the process dies before its checkpoint
    worker.kill()

    (step,) = tide.runs.steps("pay-1")
    assert (step.status, step.resume_decision) == ("running", "manual_review")
    resumed = spawn("pay-1", log, SCENARIO="retry_charge")
    assert resumed.finish().startswith("ERROR StepFailed")
    assert executions(log) == {"charge": 1}, "the card was charged again on resume"
    assert tide.runs.get("pay-1").failure_class == "manual_review"


def test_every_try_of_an_unsafe_step_records_its_intent_first(tide: Tidebase) -> None:
    tries: list[str] = []

    def send() -> str:
        tries.append("x")
        if len(tries) < 3:
            raise TimeoutError("smtp")
        return "sent"

    def wf(run: RunContext, input: None) -> str:
        return str(run.step("send", send, side_effects=["email"], retries=FAST))

    assert tide.run("wf", wf, run_id="r") == "sent"
    kinds = [e.type for e in tide.runs.events("r") if e.type.startswith("step.")]
    assert kinds == [
        "step.started",
        "step.failed",
        "step.started",
        "step.failed",
        "step.started",
        "step.completed",
    ]


def test_an_outer_steps_retry_replays_the_inner_steps_its_first_try_completed(
    tide: Tidebase,
) -> None:
    sent: list[str] = []
    tries: list[int] = []

    def outer(run: RunContext) -> str:
        def body() -> str:
            run.step("email", lambda: sent.append("mail") or "mailed", side_effects=["email"])
            tries.append(1)
            if len(tries) == 1:
                raise ConnectionError("after the email, before the end")
            return "done"

        return body()

    def wf(run: RunContext, input: None) -> str:
        return str(run.step("outer", lambda: outer(run), retries=FAST))

    assert tide.run("wf", wf, run_id="r") == "done"
    assert sent == ["mail"], "the retried outer step sent the email again"
    assert sorted(s.name for s in tide.runs.steps("r")) == ["outer", "outer/email"]


# -- keys -------------------------------------------------------------------------------------


def test_a_step_named_a_slash_b_never_shares_a_key_with_b_nested_in_a(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> list[str]:
        nested = run.step("agent", lambda: run.step("search", lambda: "nested search"))
        top = run.step("agent/search", lambda: "top-level search")
        return [nested, top]

    assert tide.run("wf", wf, run_id="r") == ["nested search", "top-level search"]
    assert tide.run("wf", wf, run_id="r") == ["nested search", "top-level search"]
    assert sorted(s.name for s in tide.runs.steps("r")) == [
        "agent",
        "agent%2Fsearch",
        "agent/search",
    ]


def test_each_gate_of_one_name_in_a_loop_asks_for_its_own_decision(tide: Tidebase) -> None:
    paid: list[str] = []

    def wf(run: RunContext, input: None) -> list[str]:
        for invoice in ("INV-1", "INV-2"):
            decision = run.gate("approve", f"Pay {invoice}?", wait=False)
            if decision.approved:
                run.step("pay", lambda inv=invoice: paid.append(inv) or inv)  # type: ignore[misc]
        return paid

    with pytest.raises(GatePending):
        tide.run("wf", wf, run_id="r")
    tide.gates.resolve("r", "approve", "approved", actor="ada")
    with pytest.raises(GatePending, match="approve#2"):
        tide.run("wf", wf, run_id="r")
    assert paid == ["INV-1"], "INV-2 was paid on INV-1's approval"
    tide.gates.resolve("r", "approve#2", "rejected", actor="ada")
    assert tide.run("wf", wf, run_id="r") == ["INV-1"]
    assert [(g.name, g.status) for g in tide.gates.list(run_id="r")] == [
        ("approve", "approved"),
        ("approve#2", "rejected"),
    ]


# -- concurrent branches ----------------------------------------------------------------------


async def test_steps_started_together_replay_their_own_checkpoints_in_any_finish_order(
    atide: AsyncTidebase,
) -> None:
    docs = {"a": "tides are long waves", "b": "waves are short tides"}
    first_to_finish = {"value": "b"}

    async def summarize(name: str) -> str:
        if name != first_to_finish["value"]:
            await asyncio.sleep(0.05)  # finishes second
        return f"summary of {docs[name]}"

    async def wf(run: AsyncRunContext, input: None) -> list[str]:
        results = await asyncio.gather(
            *(run.step("summarize", lambda n=n: summarize(n), input={"doc": docs[n]}) for n in docs)
        )
        if run.attempt == 1:
            raise Crash
        return list(results)

    with pytest.raises(Crash):
        await atide.run("wf", wf, run_id="r")
    first_to_finish["value"] = "a"  # the resumed attempt finishes them the other way round
    assert await atide.run("wf", wf, run_id="r") == [
        "summary of tides are long waves",
        "summary of waves are short tides",
    ]


async def test_named_branches_replay_their_own_checkpoints_however_they_interleave(
    atide: AsyncTidebase,
) -> None:
    ran: list[str] = []
    slow = {"value": "b"}

    async def agent_run(run: AsyncRunContext, who: str) -> str:
        with run.branch(f"agent-{who}"):
            plan = await run.step("model.request", lambda: ran.append(who) or f"plan {who}")
            if who == slow["value"]:
                await asyncio.sleep(0.05)
            await run.events.emit("agent.progress", {"who": who})
            await run.state.patch({who: "done"})
            return str(await run.step("model.request", lambda: f"{plan} → answer {who}"))

    async def wf(run: AsyncRunContext, input: None) -> list[str]:
        answers = await asyncio.gather(agent_run(run, "a"), agent_run(run, "b"))
        if run.attempt == 1:
            raise Crash
        return list(answers)

    with pytest.raises(Crash):
        await atide.run("wf", wf, run_id="r")
    slow["value"] = "a"
    assert await atide.run("wf", wf, run_id="r") == ["plan a → answer a", "plan b → answer b"]
    assert sorted(ran) == ["a", "b"]
    events = [e.payload["who"] for e in await atide.runs.events("r") if e.type == "agent.progress"]
    assert sorted(events) == ["a", "b"], "a branch's event was lost or logged twice"
    assert await atide.runs.state("r") == {"a": "done", "b": "done"}


async def test_unnamed_branches_racing_for_one_step_name_are_refused_at_first_execution(
    atide: AsyncTidebase,
) -> None:
    gate_a, gate_b = asyncio.Event(), asyncio.Event()

    async def agent_run(run: AsyncRunContext, mine: asyncio.Event, other: asyncio.Event) -> str:
        await run.step("model.request", lambda: "first")
        other.set()
        await mine.wait()
        return str(await run.step("model.request", lambda: "second"))

    async def wf(run: AsyncRunContext, input: None) -> list[str]:
        return list(
            await asyncio.gather(agent_run(run, gate_a, gate_b), agent_run(run, gate_b, gate_a))
        )

    with pytest.raises(BranchAmbiguous, match=r"run\.branch"):
        await atide.run("wf", wf, run_id="r")


async def test_gathered_coroutines_whose_same_named_steps_do_not_overlap_are_refused_too(
    atide: AsyncTidebase,
) -> None:
    """The first coroutine has finished when the second reaches ``summarize``: its key
    (``summarize#2``) came from timing all the same, and a resume may hand out the other order."""

    async def pipeline(run: AsyncRunContext, doc: str, delay: float) -> str:
        await asyncio.sleep(delay)
        text = await run.step(f"load-{doc}", lambda: f"text of {doc}")
        return str(await run.step("summarize", lambda: f"summary of {text}"))

    async def wf(run: AsyncRunContext, input: None) -> list[str]:
        return list(await asyncio.gather(pipeline(run, "a", 0.0), pipeline(run, "b", 0.05)))

    with pytest.raises(BranchAmbiguous, match=r"run\.branch"):
        await atide.run("wf", wf, run_id="late-sibling")

    async def named(run: AsyncRunContext, input: None) -> list[str]:
        async def one(doc: str, delay: float) -> str:
            with run.branch(doc):
                return await pipeline(run, doc, delay)

        return list(await asyncio.gather(one("a", 0.0), one("b", 0.05)))

    assert await atide.run("wf", named, run_id="late-sibling-named") == [
        "summary of text of a",
        "summary of text of b",
    ]


def test_work_a_pool_runs_in_nested_context_copies_is_still_told_apart(tide: Tidebase) -> None:
    """LangGraph submits ``ctx.run`` to LangChain's executor, which wraps it in a context copy
    of its own: the work runs in the inner copy, made before Tidebase saw it. Two such items
    taking one step name by timing are refused, not keyed by which finished first."""
    release_b = threading.Event()

    def node(run: RunContext, name: str) -> str:
        if name == "a":
            release_b.set()
            time.sleep(0.05)  # "b" takes the name first, then "a" asks for it too
        else:
            release_b.wait(5)
        return str(run.step("fetch", lambda: f"{name}-result"))

    def wf(run: RunContext, input: None) -> list[str]:
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = []
            for name in ("a", "b"):
                inner = contextvars.copy_context()  # LangGraph's copy, made in the caller
                outer = functools.partial(
                    contextvars.copy_context().run, inner.run, node, run, name
                )
                futures.append(pool.submit(outer))  # LangChain's executor: a copy around it
            return [f.result() for f in futures]

    with pytest.raises(BranchAmbiguous, match=r"run\.branch"):
        tide.run("wf", wf, run_id="nested-copies")


@tidebase.step
def fetch(url: str) -> str:
    FETCHED.append(url)
    return f"page {url}"


FETCHED: list[str] = []


def test_decorated_steps_called_from_a_thread_pool_are_checkpointed_and_replayed(
    tide: Tidebase,
) -> None:
    FETCHED.clear()
    urls = [f"https://example.com/{i}" for i in range(6)]

    def wf(run: RunContext, input: None) -> list[str]:
        with ThreadPoolExecutor(max_workers=3) as pool:
            pages = list(pool.map(fetch, urls))
        if run.attempt == 1:
            raise Crash
        return pages

    with pytest.raises(Crash):
        tide.run("wf", wf, run_id="r")
    assert len(tide.runs.steps("r")) == 6, "the pool threads' steps were not checkpointed"
    assert tide.run("wf", wf, run_id="r") == [f"page {u}" for u in urls]
    assert sorted(FETCHED) == sorted(urls), "a checkpointed fetch ran again"


# -- cancellation -----------------------------------------------------------------------------


def test_a_cancelled_runs_gate_cannot_be_decided_and_its_waiting_worker_stops(
    tide: Tidebase,
) -> None:
    after_gate: list[str] = []
    outcome: list[BaseException] = []

    def wf(run: RunContext, input: None) -> str:
        run.gate("approve", "go?")
        return str(run.step("after", lambda: after_gate.append("ran") or "ran"))

    def work() -> None:
        try:
            tide.run("wf", wf, run_id="r")
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    _wait(lambda: any(g.run_id == "r" for g in tide.gates.list(status="pending")))
    tide.runs.cancel("r", reason="customer left")
    with pytest.raises(RunCancelled):
        tide.gates.resolve("r", "approve", "approved", actor="ada")
    worker.join(30)
    assert isinstance(outcome[0], RunCancelled) and after_gate == []
    assert tide.gates.get("r", "approve").status == "pending"


def test_a_cancelled_child_fails_its_parent_with_a_terminal_event(tide: Tidebase) -> None:
    entered, release = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    def child(run: RunContext, input: None) -> str:
        run.step("start", lambda: entered.set() or "started")
        release.wait(30)
        return str(run.step("finish", lambda: "finished"))

    def parent(run: RunContext, input: None) -> str:
        return str(run.child("research", child))

    def work() -> None:
        try:
            tide.run("parent", parent, run_id="p")
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=work)
    worker.start()
    assert entered.wait(30)
    tide.runs.cancel("p/research", reason="too slow")
    release.set()
    worker.join(30)
    assert isinstance(outcome[0], RunCancelled)
    assert tide.runs.get("p").status == "failed"
    assert [e.type for e in tide.runs.subscribe("p")][-1] == "run.failed"  # ends: not stuck


def test_cancelling_a_parent_cancels_its_unfinished_children(tide: Tidebase) -> None:
    def child(run: RunContext, input: None) -> str:
        return str(run.gate("review", "ok?", wait=False).decision)

    def parent(run: RunContext, input: None) -> str:
        return str(run.child("reviewer", child))

    with pytest.raises(GatePending):
        tide.run("parent", parent, run_id="p")
    tide.runs.cancel("p", reason="stop everything")
    child_run = tide.runs.get("p/reviewer")
    assert child_run.status == "cancelled"
    assert [e.type for e in tide.runs.events("p/reviewer")][-1] == "run.cancelled"


# -- contract ---------------------------------------------------------------------------------


class ModelRetry(Exception):
    """Stands in for a framework's own control-flow exception."""


def test_a_step_body_raises_its_own_exception_object_with_a_note(tide: Tidebase) -> None:
    raised = ModelRetry("ask the model again")
    caught: list[BaseException] = []

    def wf(run: RunContext, input: None) -> None:
        def body() -> None:
            raise raised

        try:
            run.step("tool", body)
        except ModelRetry as exc:  # the framework's own except clause still matches
            caught.append(exc)
            raise

    with pytest.raises(ModelRetry) as info:
        tide.run("wf", wf, run_id="r")
    assert info.value is raised and caught == [raised]
    assert info.value.__notes__ == [
        "tidebase: step 'tool' of run 'r' failed; resume decision: safe_replay"
    ]
    assert tide.runs.get("r").failure_class == ResumeDecision.SAFE_REPLAY


def test_events_returns_the_whole_log_unless_a_limit_is_given(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> None:
        for i in range(1100):
            run.events.emit("tick", {"i": i})

    tide.run("wf", wf, run_id="r")
    assert len(tide.runs.events("r")) == 1102  # run.started, 1100 ticks, run.completed
    assert len(tide.runs.events("r", limit=10)) == 10


def test_unknown_runs_raise_run_not_found_everywhere(tide: Tidebase) -> None:
    with pytest.raises(RunNotFound):
        tide.runs.state_versions("nope")
    with pytest.raises(RunNotFound):
        tide.runs.children("nope")


def test_returning_after_catching_gate_pending_says_what_happened(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> str:
        try:
            run.gate("approve", "ok?", wait=False)
        except GatePending:
            return "pending"
        return "approved"

    with pytest.raises(GatePending, match="Let GatePending propagate"):
        tide.run("wf", wf, run_id="r")
    assert tide.runs.get("r").status == "waiting"


def test_state_read_during_replay_is_what_the_body_saw_the_first_time(tide: Tidebase) -> None:
    seen: list[Any] = []

    def wf(run: RunContext, input: None) -> None:
        run.state.set({"phase": "research"})
        seen.append(run.state.get())
        run.step("research", lambda: "notes")
        run.state.set({"phase": "writing"})
        if run.attempt == 1:
            raise Crash

    with pytest.raises(Crash):
        tide.run("wf", wf, run_id="r")
    tide.run("wf", wf, run_id="r")
    assert seen == [{"phase": "research"}, {"phase": "research"}]


def test_a_step_that_outruns_its_timeout_fails_and_is_retried(tide: Tidebase) -> None:
    tries: list[float] = []

    def slow() -> str:
        tries.append(1)
        if len(tries) == 1:
            threading.Event().wait(5)
        return "fast enough"

    def wf(run: RunContext, input: None) -> str:
        return str(run.step("call", slow, timeout_s=0.2, retries=FAST))

    assert tide.run("wf", wf, run_id="r") == "fast enough"
    failed = [e for e in tide.runs.events("r") if e.type == "step.failed"]
    assert failed[0].payload["error"]["type"] == "StepTimeout"


async def test_an_async_step_that_outruns_its_timeout_raises_step_timeout(
    atide: AsyncTidebase,
) -> None:
    async def wf(run: AsyncRunContext, input: None) -> None:
        await run.step("call", lambda: asyncio.sleep(5), timeout_s=0.1)

    with pytest.raises(StepTimeout):
        await atide.run("wf", wf, run_id="r")


def test_a_caller_supplied_input_hash_is_checked_like_a_computed_one(tide: Tidebase) -> None:
    def wf(run: RunContext, input: dict[str, str]) -> str:
        return str(run.step("plan", lambda: "plan", input_hash=input["hash"]))

    tide.run("wf", wf, run_id="r", input={"hash": "a" * 64})
    (step,) = tide.runs.steps("r")
    assert step.input_hash == "a" * 64
    with pytest.raises(InputMismatch):
        tide.run("wf", wf, run_id="r", input={"hash": "b" * 64})


def _wait(condition: Any, timeout: float = 30.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        done.wait(0.02)
    raise AssertionError("condition not reached")


# -- values through a checkpoint --------------------------------------------------------------


def test_stored_outputs_replay_exactly_as_json_wrote_them(tide: Tidebase) -> None:
    weather = {"temperature": 21, "city": "Oslo", "big": 1e16, "zero": -0.0}
    prompts: list[str] = []

    def wf(run: RunContext, input: None) -> str:
        got = run.step("weather", lambda: dict(weather))
        prompt = f"Write about {got}"  # key order and number forms reach the prompt
        prompts.append(prompt)
        text = str(run.step("write", lambda: prompt.upper(), input={"weather": got}))
        if run.attempt == 1:
            raise Crash
        return text

    with pytest.raises(Crash):
        tide.run("wf", wf, run_id="r")
    tide.run("wf", wf, run_id="r")  # no InputMismatch: the replayed value hashes the same
    assert (
        prompts[0]
        == prompts[1]
        == ("Write about {'temperature': 21, 'city': 'Oslo', 'big': 1e+16, 'zero': -0.0}")
    )


class Approve(pydantic.BaseModel):
    reason: str


class Reject(pydantic.BaseModel):
    reason: str


class Animal(pydantic.BaseModel):
    name: str


class Dog(Animal):
    good: bool = True


@tidebase.step
def review(ok: bool) -> Approve | Reject:
    return Approve(reason="fine") if ok else Reject(reason="too costly")


@tidebase.step
def adopt() -> Animal:
    return Dog(name="Rex", good=True)


def test_a_union_or_base_class_annotation_replays_the_concrete_type(tide: Tidebase) -> None:
    seen: list[Any] = []

    @tidebase.workflow
    def decide() -> str:
        seen.extend([review(False), adopt()])
        if len(seen) == 2:
            raise Crash
        return "done"

    with pytest.raises(Crash):
        decide.run(run_id="r")
    decide.run(run_id="r")
    replayed_review, replayed_pet = seen[2], seen[3]
    assert type(replayed_review) is Reject, "a Reject replayed as an Approve"
    assert type(replayed_pet) is Dog and replayed_pet.good is True


def test_an_unstorable_output_of_an_unsafe_step_parks_it_with_the_reason(tide: Tidebase) -> None:
    def looped() -> list[Any]:
        value: list[Any] = ["charged"]
        value.append(value)  # a self-referencing list
        return value

    def wf(run: RunContext, input: None) -> None:
        run.step("charge", looped, side_effects=["payment"])

    with pytest.raises(NotSerializable, match="output of step 'charge'"):
        tide.run("wf", wf, run_id="r")
    (step,) = tide.runs.steps("r")
    assert (step.status, step.resume_decision) == ("failed", "manual_review")
    assert step.error is not None and step.error["type"] == "NotSerializable"


async def test_a_task_that_outlives_its_run_is_refused_the_returned_connection(
    atide: AsyncTidebase,
) -> None:
    straggler: dict[str, asyncio.Task[Any]] = {}

    async def late_writer(run: AsyncRunContext) -> None:
        await asyncio.sleep(0.2)  # the run has failed and given its connection back by now
        await run.step("late", lambda: "too late")

    async def wf(run: AsyncRunContext, input: None) -> None:
        straggler["task"] = asyncio.create_task(late_writer(run))
        raise RuntimeError("the workflow fails first")

    with pytest.raises(RuntimeError, match="fails first"):
        await atide.run("wf", wf, run_id="r")
    with pytest.raises(ConnectionReleased, match="await or cancel the tasks"):
        await straggler["task"]
    # The connection went back to the pool untouched by the straggler: the next run is fine.
    assert await atide.run("wf2", lambda run, input: "ok", run_id="r2") == "ok"
    assert [s.name for s in await atide.runs.steps("r")] == []
