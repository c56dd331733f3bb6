"""Pydantic AI on the durable-operation core: a complete ledger, provider cost, failed model
requests that replay, drift in model settings, parallel tool calls, refused checkpoints."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage
from tidebase_pydantic_ai import TidebaseDurability

from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import InputMismatch, RunCancelled

from .scripted import Deps, counting, triage_agent
from .test_replay import Crash, crash_once, first_and_resumed

try:  # Pydantic AI 2.6x+ marks a stream's failure with the response it had streamed
    from pydantic_ai.durable_exec._utils import streamed_before_failing
except ImportError:  # older releases mark nothing: the stream-failure test has nothing to read
    streamed_before_failing = None


def answering(text: str, ran: Counter[str], name: str, **usage: Any) -> FunctionModel:
    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        ran[name] += 1
        request_usage = RequestUsage(input_tokens=10, output_tokens=5)
        for field, value in usage.items():
            setattr(request_usage, field, value)
        return ModelResponse(parts=[TextPart(text)], usage=request_usage)

    return FunctionModel(respond, model_name=name)


async def test_model_calls_inside_a_step_body_are_in_the_ledger_once(
    atide: AsyncTidebase,
) -> None:
    """The seed's ``run.step("triage", lambda: agent.run(...))``: every real call is ledgered,
    and the completed step replays as a whole (no row twice)."""
    ran: Counter[str] = Counter()
    agent = triage_agent(counting(ran))

    async def workflow(run: AsyncRunContext, input: None) -> str:
        async def triage() -> str:
            return (await agent.run("billing is down", deps=Deps(run=run))).output

        return crash_once(run, await run.step("triage", triage))

    first, resumed = await first_and_resumed(atide, "pai-in-step", workflow)
    assert first == resumed and ran["model"] == 3
    rows = await atide.usage.records("pai-in-step")
    assert [(r.step_name, r.input_tokens) for r in rows] == [
        ("triage/triage__run/triage__model.request", 120),
        ("triage/triage__run/triage__model.request#2", 200),
        ("triage/triage__run/triage__model.request#3", 260),
    ]


async def test_the_cost_the_framework_reports_wins_over_the_price_table(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    agent = Agent(
        answering("ok", ran, "gpt-4o", cost=Decimal("0.5")), capabilities=[TidebaseDurability()]
    )

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return (await agent.run("hi")).output

    await atide.run("wf", workflow, run_id="pai-cost")
    (row,) = await atide.usage.records("pai-cost")
    assert (row.cost_usd, row.cost_source) == (Decimal("0.5"), "given")


async def test_a_model_response_is_priced_once_and_the_ledger_has_the_frameworks_price(
    atide: AsyncTidebase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The framework prices every response it receives; the ledger takes that price from the
    checkpoint instead of pricing the same tokens again (a pricing is ~0.2 ms of CPU)."""
    import genai_prices
    from pydantic_ai import _genai_prices

    priced: list[str] = []
    calc_price = genai_prices.calc_price

    def counting_calc_price(*args: Any, **kwargs: Any) -> Any:
        priced.append(args[1])
        return calc_price(*args, **kwargs)

    # The ledger's price table and the framework's own import of it.
    monkeypatch.setattr(genai_prices, "calc_price", counting_calc_price)
    monkeypatch.setattr(_genai_prices, "calc_price", counting_calc_price)
    ran: Counter[str] = Counter()
    agent = Agent(answering("ok", ran, "gpt-4o"), capabilities=[TidebaseDurability()])

    async def workflow(run: AsyncRunContext, input: None) -> Any:
        result = await agent.run("hi")
        return str(result.all_messages()[-1].usage.cost)  # type: ignore[union-attr]

    seen_by_agent = await atide.run("wf", workflow, run_id="pai-priced-once")
    assert priced == ["gpt-4o"]
    (row,) = await atide.usage.records("pai-priced-once")
    # gpt-4o: $2.50 per million input tokens, $10 per million output tokens.
    assert row.cost_usd == Decimal(seen_by_agent) == Decimal("0.000075")
    assert row.cost_source == "given"


async def test_a_failed_model_request_replays_its_error_so_the_fallback_replays_too(
    atide: AsyncTidebase,
) -> None:
    """Try the primary agent; on a 503 ask the backup; crash; resume: the primary's failure is
    raised again from its checkpoint (not sent again), and the backup's answer replays."""
    ran: Counter[str] = Counter()

    def unavailable(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        ran["primary"] += 1
        raise ModelHTTPError(503, "primary-model", body={"error": "overloaded"})

    primary = Agent(
        FunctionModel(unavailable, model_name="primary-model"),
        name="primary",
        capabilities=[TidebaseDurability()],
    )
    backup = Agent(
        answering("from backup", ran, "backup"), name="backup", capabilities=[TidebaseDurability()]
    )
    caught: list[int] = []

    async def workflow(run: AsyncRunContext, input: None) -> str:
        try:
            output = (await primary.run("summarize")).output
        except ModelHTTPError as exc:
            caught.append(exc.status_code)
            output = (await backup.run("summarize")).output
        return crash_once(run, output)

    first, resumed = await first_and_resumed(atide, "pai-fallback", workflow)
    assert first == resumed == "from backup"
    assert ran == {"primary": 1, "backup": 1}, "a recorded call was sent again"
    assert caught == [503, 503], "the replayed error is the provider's error, as it was"
    steps = {s.name: s for s in await atide.runs.steps("pai-fallback")}
    assert "$tidebase.error" in steps["primary__run/primary__model.request"].output


async def test_a_model_request_that_failed_the_attempt_is_sent_again_on_resume(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    down = [True]

    def flaky(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        ran["model"] += 1
        if down[0]:
            raise ModelHTTPError(503, "m")
        return ModelResponse(parts=[TextPart("up again")])

    agent = Agent(FunctionModel(flaky, model_name="m"), capabilities=[TidebaseDurability()])

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return (await agent.run("status?")).output

    with pytest.raises(ModelHTTPError):
        await atide.run("wf", workflow, run_id="pai-flaky")
    down[0] = False
    assert await atide.run("wf", workflow, run_id="pai-flaky") == "up again"
    assert ran["model"] == 2


async def test_changed_model_settings_raise_input_mismatch(atide: AsyncTidebase) -> None:
    ran: Counter[str] = Counter()
    agent = Agent(answering("ok", ran, "m"), capabilities=[TidebaseDurability()])

    async def workflow(run: AsyncRunContext, input: None) -> str:
        temperature = 0.0 if run.attempt == 1 else 0.9
        result = await agent.run("hi", model_settings={"temperature": temperature})
        return crash_once(run, result.output)

    with pytest.raises(Crash):
        await atide.run("wf", workflow, run_id="pai-settings")
    with pytest.raises(InputMismatch, match=r"model\.request"):
        await atide.run("wf", workflow, run_id="pai-settings")
    assert ran["m"] == 1


async def test_tool_calls_of_one_response_run_in_parallel_and_replay_by_call_id(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    in_flight = [0, 0]  # now, most at once
    calls = [ToolCallPart("fetch", {"n": n}, tool_call_id=f"call_{n}") for n in range(20)]

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        ran["model"] += 1
        if len(messages) == 1:
            return ModelResponse(parts=list(calls))
        return ModelResponse(parts=[TextPart("fetched")])

    agent = Agent(FunctionModel(respond), name="fan", capabilities=[TidebaseDurability()])

    @agent.tool_plain
    async def fetch(n: int) -> int:
        ran["fetch"] += 1
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        await asyncio.sleep(0.05 if n % 2 else 0.01)  # they finish out of order
        in_flight[0] -= 1
        return n * n

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return crash_once(run, (await agent.run("fetch all")).output)

    await first_and_resumed(atide, "pai-parallel-io", workflow)
    assert in_flight[1] == 20, "the tool calls of one response must overlap"
    assert ran == {"model": 2, "fetch": 20}
    outputs = {
        s.name.rsplit(".", 1)[1]: s.output["result"]
        for s in await atide.runs.steps("pai-parallel-io")
        if "call_tool" in s.name
    }
    assert outputs == {f"call_{n}": n * n for n in range(20)}


async def test_a_call_that_completed_while_a_cancel_arrived_is_still_in_the_ledger(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()

    async def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        ran["model"] += 1
        # The cancel lands while the call is in flight: its checkpoint will be refused.
        await atide.runs.cancel("pai-cancel-late", reason="stop")
        return ModelResponse(
            parts=[TextPart("late")], usage=RequestUsage(input_tokens=7, output_tokens=3)
        )

    agent = Agent(FunctionModel(respond, model_name="gpt-4o"), capabilities=[TidebaseDurability()])

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return (await agent.run("hi")).output

    with pytest.raises(RunCancelled):
        await atide.run("wf", workflow, run_id="pai-cancel-late")
    assert ran["model"] == 1
    rows = await atide.usage.records("pai-cancel-late")
    assert [(r.step_name, r.input_tokens, r.output_tokens) for r in rows] == [
        ("agent__run/agent__model.request", 7, 3)
    ], "the call was paid for: its usage is in the ledger without its checkpoint"
    assert not [s for s in await atide.runs.steps("pai-cancel-late") if s.status == "completed"]


async def test_bytes_a_tool_returns_reach_the_model_as_they_do_outside_a_run(
    atide: AsyncTidebase,
) -> None:
    """Base64, as Pydantic AI renders bytes for a model; a UTF-8 dump of the checkpoint handed
    the model the raw text inside a run only."""
    seen: list[str] = []

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
        if not returns:
            return ModelResponse(parts=[ToolCallPart("blob", {}, tool_call_id="c1")])
        seen.append(returns[0].model_response_str())
        return ModelResponse(parts=[TextPart("ok")])

    for capabilities in ([], [TidebaseDurability()]):
        agent = Agent(FunctionModel(respond), capabilities=capabilities)

        @agent.tool_plain
        def blob() -> bytes:
            return b"hello"

        async def workflow(run: AsyncRunContext, input: None) -> str:
            return (await agent.run("go")).output  # noqa: B023  (called within the loop)

        await atide.run("wf", workflow, run_id=f"pai-bytes-{len(capabilities)}")
    assert seen == ["aGVsbG8=", "aGVsbG8="]


async def test_a_stream_failing_midway_is_ledgered_once_and_replays_as_a_started_stream(
    atide: AsyncTidebase,
) -> None:
    """The primary's stream fails after its first words (a 503 mid-stream): what it had used is
    in the ledger once, with the recorded failure; the backup answers; crash; resume: the
    failure is raised again, as a stream that had started, without streaming again."""
    if streamed_before_failing is None:
        pytest.skip("this Pydantic AI release does not tell what a failed stream produced")
    ran: Counter[str] = Counter()

    async def breaks(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str]:
        ran["primary"] += 1
        yield "The tides "
        raise ModelHTTPError(503, "primary-model", body={"error": "overloaded mid-stream"})

    primary = Agent(
        FunctionModel(stream_function=breaks, model_name="primary-model"),
        name="primary",
        capabilities=[TidebaseDurability()],
    )
    backup = Agent(
        answering("from backup", ran, "backup"), name="backup", capabilities=[TidebaseDurability()]
    )
    caught: list[tuple[int, bool]] = []

    async def workflow(run: AsyncRunContext, input: None) -> str:
        try:
            async with primary.run_stream("summarize") as streamed:
                output = await streamed.get_output()
        except ModelHTTPError as exc:
            caught.append((exc.status_code, streamed_before_failing(exc) is not None))
            output = (await backup.run("summarize")).output
        return crash_once(run, output)

    first, resumed = await first_and_resumed(atide, "pai-stream-fails", workflow)
    assert first == resumed == "from backup"
    assert ran == {"primary": 1, "backup": 1}, "the failed stream was sent again"
    assert caught == [(503, True), (503, True)], "replayed as the failure of a started stream"
    rows = await atide.usage.records("pai-stream-fails")
    primary_rows = [(r.model, r.output_tokens) for r in rows if r.agent == "primary"]
    assert primary_rows == [("primary-model", 2)], "the two words streamed before the 503, once"
