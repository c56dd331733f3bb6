"""A resumed run replays the agent's model requests and tool calls from their checkpoints.

Each test runs a workflow whose first attempt fails after the agent finished (as a crash
would), then resumes it: nothing the agent did may execute again, and what it returns must be
what the first attempt saw.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, TypeVar

import pytest
from pydantic_ai import Agent, ModelRetry, RunContext
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.test import TestModel
from pydantic_ai.toolsets import FunctionToolset
from tidebase_pydantic_ai import TidebaseDurability

from tidebase import RunContext as SyncRunContext
from tidebase import Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import InputMismatch

from .scripted import Deps, counting, keys_of, scripted_model, triage_agent

T = TypeVar("T")


class Crash(Exception):
    """Stands in for the process dying after the agent finished; carries what it returned."""


def crash_once(run: AsyncRunContext | SyncRunContext, value: T) -> T:
    if run.attempt == 1:
        raise Crash(value)
    return value


async def first_and_resumed(atide: AsyncTidebase, run_id: str, workflow: Any) -> tuple[Any, Any]:
    """What the workflow returned in its crashed first attempt, and in the resumed one."""
    with pytest.raises(Crash) as crashed:
        await atide.run("agent-wf", workflow, run_id=run_id)
    return crashed.value.args[0], await atide.run("agent-wf", workflow, run_id=run_id)


async def test_a_resumed_run_executes_no_model_request_and_no_tool_again(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    agent = triage_agent(counting(ran))

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await agent.run("billing is down", deps=Deps(run=run))
        return crash_once(run, result.output)

    first, resumed = await first_and_resumed(atide, "pai-replay", workflow)
    assert first == resumed == "filed | billing: 42 errors | TICKET-1 billing 500s"
    assert ran == {"model": 3, "search_logs": 1, "file_ticket": 1}, "work executed again"
    assert keys_of([s.name for s in await atide.runs.steps("pai-replay")]) == [
        "triage__run/triage__model.request",
        "triage__run/triage__function_toolset__<agent>.call_tool:search_logs.<id>",
        "triage__run/triage__model.request#2",
        "triage__run/triage__function_toolset__<agent>.call_tool:file_ticket.<id>",
        "triage__run/triage__model.request#3",
    ]


async def test_the_ledger_holds_one_row_per_real_model_request_with_its_checkpoint(
    atide: AsyncTidebase,
) -> None:
    agent = triage_agent(lambda _: None)

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await agent.run("billing is down", deps=Deps(run=run))
        return crash_once(run, result.output)

    await first_and_resumed(atide, "pai-usage", workflow)
    rows = await atide.usage.records("pai-usage")
    assert [(r.step_name, r.attempt, r.input_tokens, r.output_tokens) for r in rows] == [
        ("triage__run/triage__model.request", 1, 120, 15),
        ("triage__run/triage__model.request#2", 1, 200, 25),
        ("triage__run/triage__model.request#3", 1, 260, 5),
    ]
    assert {(r.kind, r.model) for r in rows} == {("llm", "gpt-4o")}
    assert all(r.cost_usd is not None and r.cost_usd > 0 for r in rows), "priced by genai-prices"
    summary = await atide.usage.summary("pai-usage")
    assert (summary.input_tokens, summary.output_tokens) == (580, 45)


async def test_a_changed_prompt_raises_input_mismatch_instead_of_replaying_a_stale_answer(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    agent = triage_agent(counting(ran))

    async def workflow(run: AsyncRunContext, input: None) -> str:
        prompt = "billing is down" if run.attempt == 1 else "billing is slow"
        result = await agent.run(prompt, deps=Deps(run=run))
        return crash_once(run, result.output)

    with pytest.raises(Crash):
        await atide.run("agent-wf", workflow, run_id="pai-drift")
    with pytest.raises(InputMismatch, match=r"triage__model\.request"):
        await atide.run("agent-wf", workflow, run_id="pai-drift")
    assert ran["model"] == 3, "the changed request must not reach the model"


async def test_parallel_identical_tool_calls_stay_distinct_steps(atide: AsyncTidebase) -> None:
    ran: Counter[str] = Counter()
    calls = ToolCallPart("roll", {"sides": 6})
    script = [
        ModelResponse(parts=[calls, ToolCallPart("roll", {"sides": 6})]),
        ModelResponse(parts=[TextPart("rolled")]),
    ]
    agent = Agent(
        scripted_model(counting(ran), script), name="dice", capabilities=[TidebaseDurability()]
    )

    @agent.tool_plain
    def roll(sides: int) -> int:
        ran["roll"] += 1
        return ran["roll"]  # differs per call, so swapped or merged results would show

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await agent.run("roll twice")
        return crash_once(run, result.output)

    assert await first_and_resumed(atide, "pai-parallel", workflow) == ("rolled | 1 | 2",) * 2
    assert ran == {"model": 2, "roll": 2}
    tool_steps = [s for s in await atide.runs.steps("pai-parallel") if "roll" in s.name]
    # Keyed by call id: each call's result stays its own whichever finishes first.
    assert sorted(s.output["result"] for s in tool_steps) == [1, 2]
    assert len({s.name for s in tool_steps}) == 2
    assert (
        keys_of([s.name for s in tool_steps])
        == ["dice__run/dice__function_toolset__<agent>.call_tool:roll.<id>"] * 2
    )


async def test_model_retry_is_recorded_as_a_value_and_raised_again_on_replay(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    script = [
        ModelResponse(parts=[ToolCallPart("lookup", {"q": "status"})]),
        ModelResponse(parts=[ToolCallPart("lookup", {"q": "status"})]),
        ModelResponse(parts=[TextPart("done")]),
    ]
    agent = Agent(
        scripted_model(counting(ran), script), name="retry", capabilities=[TidebaseDurability()]
    )

    @agent.tool
    def lookup(ctx: RunContext[None], q: str) -> str:
        ran["lookup"] += 1
        if ctx.retry == 0:
            raise ModelRetry("the status service is warming up")
        return f"{q}: green"

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await agent.run("status?")
        return crash_once(run, result.output)

    first, resumed = await first_and_resumed(atide, "pai-retry", workflow)
    assert first == resumed and first.startswith("done") and first.endswith("status: green")
    assert ran == {"model": 3, "lookup": 2}
    retried = (await atide.runs.steps("pai-retry"))[1]
    assert retried.output == {"kind": "model_retry", "message": "the status service is warming up"}


async def test_streamed_runs_replay_their_requests_as_completed_streams(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    agent = triage_agent(counting(ran))

    async def workflow(run: AsyncRunContext, input: None) -> list[str]:
        async with agent.run_stream("billing is down", deps=Deps(run=run)) as streamed_run:
            streamed = await streamed_run.get_output()
        async with agent.iter("billing is down", deps=Deps(run=run)) as agent_run:
            nodes = [type(node).__name__ async for node in agent_run]
        assert agent_run.result is not None
        return crash_once(run, [streamed, agent_run.result.output, *nodes])

    first, resumed = await first_and_resumed(atide, "pai-stream", workflow)
    assert first == resumed
    assert first[0].startswith("filed") and first[1].startswith("filed")
    # run_stream streams its three requests, iter (not streaming its nodes) requests them.
    assert ran == {"stream": 3, "model": 3, "search_logs": 2, "file_ticket": 2}
    names = [s.name for s in await atide.runs.steps("pai-stream")]
    assert [n for n in names if "model" in n] == [
        "triage__run/triage__model.request_stream",
        "triage__run/triage__model.request_stream#2",
        "triage__run/triage__model.request_stream#3",
        "triage__run#2/triage__model.request",
        "triage__run#2/triage__model.request#2",
        "triage__run#2/triage__model.request#3",
    ]


async def test_attached_per_run_to_an_agent_built_without_it(atide: AsyncTidebase) -> None:
    ran: Counter[str] = Counter()
    agent = triage_agent(counting(ran), durable=False)

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await agent.run(
            "billing is down", deps=Deps(run=run), capabilities=[TidebaseDurability()]
        )
        return crash_once(run, result.output)

    first, resumed = await first_and_resumed(atide, "pai-per-run", workflow)
    assert first == resumed
    assert ran == {"model": 3, "search_logs": 1, "file_ticket": 1}


async def test_outside_a_run_the_capability_does_nothing() -> None:
    ran: Counter[str] = Counter()
    agent = triage_agent(counting(ran))
    for _ in range(2):
        result = await agent.run("billing is down", deps=None)  # type: ignore[arg-type]
        assert result.output.startswith("filed")
    assert ran == {"model": 6, "search_logs": 2, "file_ticket": 2}


def test_a_sync_workflow_drives_the_agent_with_run_sync(tide: Tidebase) -> None:
    ran: Counter[str] = Counter()
    agent = triage_agent(counting(ran))

    def workflow(run: SyncRunContext, input: None) -> str:
        return crash_once(run, agent.run_sync("billing is down", deps=Deps(run=run)).output)

    with pytest.raises(Crash) as crashed:
        tide.run("sync-wf", workflow, run_id="pai-sync")
    assert tide.run("sync-wf", workflow, run_id="pai-sync") == crashed.value.args[0]
    assert ran == {"model": 3, "search_logs": 1, "file_ticket": 1}
    assert len(tide.usage.records("pai-sync")) == 3


async def test_deps_holding_another_run_are_refused(atide: AsyncTidebase) -> None:
    agent = triage_agent(lambda _: None)
    finished: list[AsyncRunContext] = []

    async def first(run: AsyncRunContext, input: None) -> None:
        finished.append(run)

    async def second(run: AsyncRunContext, input: None) -> str:
        return (await agent.run("billing is down", deps=Deps(run=finished[0]))).output

    await atide.run("first", first, run_id="pai-deps-1")
    with pytest.raises(UserError, match=r"deps.run holds run 'pai-deps-1'.*'pai-deps-2'"):
        await atide.run("second", second, run_id="pai-deps-2")


async def test_a_toolset_passed_to_one_run_is_refused_inside_a_run(atide: AsyncTidebase) -> None:
    agent = Agent(TestModel(), name="extra", capabilities=[TidebaseDurability()])

    def extra_tool(x: int) -> int:
        return x

    async def workflow(run: AsyncRunContext, input: None) -> str:
        toolset = FunctionToolset([extra_tool], id="extra")
        return (await agent.run("hi", toolsets=[toolset])).output

    with pytest.raises(UserError, match="extra"):
        await atide.run("wf", workflow, run_id="pai-runtime-toolset")


async def test_a_failing_tool_raises_its_own_error_and_runs_again_on_resume(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    ticketing_down = [True]

    def record(name: str) -> None:
        if name == "file_ticket" and ticketing_down[0]:
            raise ConnectionError("ticketing API unreachable")
        ran[name] += 1

    agent = triage_agent(record)

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return (await agent.run("billing is down", deps=Deps(run=run))).output

    with pytest.raises(ConnectionError, match="unreachable"):
        await atide.run("wf", workflow, run_id="pai-tool-error")
    steps = {
        k: s
        for k, s in zip(
            keys_of([s.name for s in await atide.runs.steps("pai-tool-error")]),
            await atide.runs.steps("pai-tool-error"),
            strict=True,
        )
    }
    failed = steps["triage__run/triage__function_toolset__<agent>.call_tool:file_ticket.<id>"]
    assert (failed.status, failed.resume_decision) == ("failed", "safe_replay")

    ticketing_down[0] = False
    assert (await atide.run("wf", workflow, run_id="pai-tool-error")).startswith("filed")
    assert ran == {"model": 3, "search_logs": 1, "file_ticket": 1}


@pytest.mark.skipif(
    not hasattr(AbstractCapability, "get_run_start_time"), reason="Pydantic AI < 2.62"
)
async def test_a_resumed_run_counts_its_timeout_from_the_first_start(atide: AsyncTidebase) -> None:
    agent = triage_agent(lambda _: None)

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await agent.run("billing is down", deps=Deps(run=run), timeout=600)
        return crash_once(run, result.run_id)

    first, resumed = await first_and_resumed(atide, "pai-timeout", workflow)
    assert first == resumed == "pai-timeout:triage__run", "a replay-stable Pydantic AI run id"
    steps = await atide.runs.steps("pai-timeout")
    (started,) = [s for s in steps if s.name == "triage__run/triage__run_start_time"]
    assert started.attempt == 1


async def test_inside_a_run_a_stream_gives_its_text_whole_as_the_docs_say(
    atide: AsyncTidebase,
) -> None:
    """The durable step consumes the model's stream: the caller gets no token deltas, on the
    first execution as on replay (docs/integrations/pydantic-ai.md says so)."""
    script = [ModelResponse(parts=[TextPart("one two three")])]
    agent = Agent(scripted_model(lambda _: None, script), capabilities=[TidebaseDurability()])

    async def workflow(run: AsyncRunContext, input: None) -> list[str]:
        async with agent.run_stream("go") as result:
            chunks = [d async for d in result.stream_text(delta=True, debounce_by=None)]
        return crash_once(run, chunks)

    first, resumed = await first_and_resumed(atide, "pai-deltas", workflow)
    assert first == resumed == ["one two three "]
    plain = Agent(scripted_model(lambda _: None, script))
    async with plain.run_stream("go") as result:  # outside a run: token by token
        assert [d async for d in result.stream_text(delta=True, debounce_by=None)] == [
            "one ",
            "two ",
            "three ",
        ]
