"""The async face: the same rules through AsyncTidebase (the source of the sync engine)."""

from __future__ import annotations

import asyncio

import pydantic
import pytest

from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import InputMismatch, RunCancelled, RunLocked


class Triage(pydantic.BaseModel):
    severity: int
    summary: str


async def test_async_and_sync_step_functions_and_coroutine_returning_lambdas(
    atide: AsyncTidebase,
) -> None:
    ran: list[str] = []

    async def classify() -> Triage:
        ran.append("classify")
        await asyncio.sleep(0)
        return Triage(severity=2, summary="login broken")

    async def agent_run(prompt: str) -> str:  # what agent.run(...) looks like
        ran.append("agent")
        return prompt.upper()

    async def wf(run: AsyncRunContext, input: dict) -> dict:
        triage = await run.step("triage", classify)
        answer = await run.step("agent", lambda: agent_run(input["prompt"]), input=input)
        count = await run.step("count", lambda: len(answer))
        if run.attempt == 1:
            raise RuntimeError("crash")
        return {"triage": triage, "answer": answer, "count": count}

    with pytest.raises(RuntimeError):
        await atide.run("wf", wf, run_id="a", input={"prompt": "hi"})
    out = await atide.run("wf", wf, run_id="a", input={"prompt": "hi"})
    assert out == {"triage": Triage(severity=2, summary="login broken"), "answer": "HI", "count": 2}
    assert isinstance(out["triage"], Triage)  # typed replay from the annotation
    assert ran == ["classify", "agent"]


async def test_async_input_drift_and_retries(atide: AsyncTidebase) -> None:
    from tidebase import RetryPolicy

    tries: list[int] = []

    async def flaky() -> int:
        tries.append(1)
        if len(tries) < 2:
            raise ConnectionError("blip")
        return 7

    async def wf(run: AsyncRunContext, input: int) -> int:
        value = await run.step(
            "flaky", flaky, input=input, retries=RetryPolicy(1, initial_delay=0.001)
        )
        if run.attempt == 1:
            raise RuntimeError("crash")
        return value

    with pytest.raises(RuntimeError):
        await atide.run("wf", wf, run_id="r", input=1)
    assert await atide.run("wf", wf, run_id="r") == 7  # input=None resumes with input 1
    assert tries == [1, 1]

    async def drifted(run: AsyncRunContext, input: int) -> int:
        return await run.step("s", lambda: 1, input=input)

    async def wf2(run: AsyncRunContext, input: int) -> int:
        await run.step("s", lambda: 1, input=run.attempt)
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        await atide.run("wf2", wf2, run_id="r2")
    with pytest.raises(InputMismatch, match="step 's'"):
        await atide.run("wf2", wf2, run_id="r2")
    del drifted


async def test_async_concurrent_steps_in_one_run_get_deterministic_keys(
    atide: AsyncTidebase,
) -> None:
    async def fetch(i: int) -> int:
        await asyncio.sleep(0.001 * (5 - i))
        return i

    async def wf(run: AsyncRunContext, input: None) -> list[int]:
        return list(
            await asyncio.gather(
                *(run.step("fetch", lambda i=i: fetch(i), input=i) for i in range(5))
            )
        )

    assert await atide.run("wf", wf, run_id="g") == [0, 1, 2, 3, 4]
    steps = {s.name: s.output for s in await atide.runs.steps("g")}
    assert steps == {"fetch": 0, "fetch#2": 1, "fetch#3": 2, "fetch#4": 3, "fetch#5": 4}


async def test_async_cancel_lock_and_failure(atide: AsyncTidebase) -> None:
    started = asyncio.Event()
    release = asyncio.Event()

    async def slow(run: AsyncRunContext, input: None) -> str:
        await run.step("wait", lambda: (started.set(), release.wait())[1])
        await run.step("next", lambda: "never")
        return "done"

    task = asyncio.create_task(atide.run("slow", slow, run_id="s"))
    await asyncio.wait_for(started.wait(), 10)
    with pytest.raises(RunLocked):
        await atide.run("slow", slow, run_id="s")
    await atide.runs.cancel("s", reason="stop")
    release.set()
    with pytest.raises(RunCancelled, match="stop"):
        await task
    assert [s.name for s in await atide.runs.steps("s")] == []

    async def boom(run: AsyncRunContext, input: None) -> None:
        await run.step("boom", lambda: 1 / 0, side_effects=["email"])

    with pytest.raises(ZeroDivisionError):
        await atide.run("boom", boom, run_id="b")
    assert (await atide.runs.get("b")).failure_class == "manual_review"


def test_the_sync_api_names_its_mistake_when_a_step_returns_a_coroutine(tide) -> None:  # type: ignore[no-untyped-def]
    async def agent() -> str:
        return "x"

    def wf(run, input):  # type: ignore[no-untyped-def]
        return run.step("agent", agent)

    with pytest.raises(TypeError, match="use AsyncTidebase"):
        tide.run("wf", wf, run_id="c")
    assert tide.runs.steps("c") == []
