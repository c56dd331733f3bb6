"""The real OpenAI client path: ``OpenAIResponsesModel`` and ``OpenAIChatCompletionsModel`` with
the ``openai`` client over HTTP, replayed from hand-written cassettes (``record_mode="none"``:
any request a cassette does not hold fails). The ledger's tokens come from the response bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIProvider,
    OpenAIResponsesModel,
    RunConfig,
    function_tool,
)
from agents.exceptions import ModelBehaviorError
from openai import AsyncOpenAI
from tidebase_openai_agents import run_agent, run_agent_streamed

from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import InputMismatch

from .test_replay import Crash, crash_once, first_and_resumed

vcr = pytest.importorskip("vcr")

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes" / "openai_agents"


@pytest.fixture
def client() -> AsyncOpenAI:
    return AsyncOpenAI(api_key="sk-test-not-a-real-key", max_retries=0)


def cassette(name: str) -> Any:
    return vcr.use_cassette(str(CASSETTES / name), record_mode="none")


def orders_agent(model: Model | str) -> Agent[Any]:
    @function_tool
    async def lookup_order(order_id: str) -> str:
        """Look an order up."""
        return f"order {order_id}: 30 EUR, paid"

    return Agent(
        name="orders",
        instructions="Answer questions about orders.",
        model=model,
        tools=[lookup_order],
    )


@pytest.mark.parametrize(
    ("model_class", "name", "recording", "tokens"),
    [
        (OpenAIResponsesModel, "gpt-4.1", "responses_tool_call.yaml", [(81, 18), (124, 12)]),
        (
            OpenAIChatCompletionsModel,
            "gpt-4o-mini",
            "chat_completions_tool_call.yaml",
            [(77, 17), (112, 11)],
        ),
    ],
)
async def test_a_resumed_run_sends_no_request_and_the_ledger_holds_the_bodies_usage(
    atide: AsyncTidebase,
    client: AsyncOpenAI,
    model_class: Any,
    name: str,
    recording: str,
    tokens: list[tuple[int, int]],
) -> None:
    agent = orders_agent(model_class(model=name, openai_client=client))

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return crash_once(run, (await run_agent(agent, "Is order A1 paid?")).final_output)

    with cassette(recording) as http:
        first, resumed = await first_and_resumed(atide, f"oai-http-{name}", workflow)
        assert http.play_count == 2, "the resumed run sent no request"
    assert first == resumed == "Order A1 is paid: 30 EUR."
    rows = await atide.usage.records(f"oai-http-{name}")
    assert [(r.provider, r.model, r.input_tokens, r.output_tokens) for r in rows] == [
        ("openai", name, i, o) for i, o in tokens
    ]


async def test_a_streamed_http_response_is_checkpointed_and_replayed(
    atide: AsyncTidebase, client: AsyncOpenAI
) -> None:
    agent = orders_agent(OpenAIResponsesModel(model="gpt-4.1", openai_client=client))

    async def workflow(run: AsyncRunContext, input: None) -> Any:
        streamed = run_agent_streamed(agent, "Why are there tides?")
        deltas = [
            e.data.delta
            async for e in streamed.stream_events()
            if e.type == "raw_response_event" and e.data.type == "response.output_text.delta"
        ]
        return crash_once(run, [streamed.final_output, deltas])

    with cassette("responses_stream.yaml") as http:
        first, resumed = await first_and_resumed(atide, "oai-http-stream", workflow)
        assert http.play_count == 1
    assert first == ["Tides follow the moon.", ["Tides ", "follow the moon."]]
    assert resumed == ["Tides follow the moon.", []]
    [row] = await atide.usage.records("oai-http-stream")
    assert (row.input_tokens, row.output_tokens, row.total_tokens) == (42, 6, 48)


def by_name(client: AsyncOpenAI) -> RunConfig:
    """A run config whose provider resolves model names to Responses models on ``client``."""
    return RunConfig(model_provider=OpenAIProvider(openai_client=client, use_responses=True))


async def test_an_agent_given_its_model_by_name_is_ledgered_under_that_agent_and_model(
    atide: AsyncTidebase, client: AsyncOpenAI
) -> None:
    agent = orders_agent("gpt-4.1")

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await run_agent(agent, "Is order A1 paid?", run_config=by_name(client))
        return crash_once(run, result.final_output)

    with cassette("responses_tool_call.yaml") as http:
        first, resumed = await first_and_resumed(atide, "oai-http-by-name", workflow)
        assert http.play_count == 2, "the same model replays: the resumed run sent no request"
    assert first == resumed == "Order A1 is paid: 30 EUR."
    rows = await atide.usage.records("oai-http-by-name")
    assert [(r.agent, r.provider, r.model) for r in rows] == [("orders", "openai", "gpt-4.1")] * 2
    summary = await atide.usage.summary("oai-http-by-name")
    assert [(a.agent, a.calls, a.input_tokens) for a in summary.by_agent] == [("orders", 2, 205)]


@pytest.mark.parametrize("given_as", ["name", "instance"])
async def test_changing_the_agents_model_between_attempts_raises_input_mismatch(
    atide: AsyncTidebase, client: AsyncOpenAI, given_as: str
) -> None:
    def model(name: str) -> str | Model:
        return (
            name if given_as == "name" else OpenAIResponsesModel(model=name, openai_client=client)
        )

    async def workflow(run: AsyncRunContext, input: None) -> str:
        agent = orders_agent(model("gpt-4.1" if run.attempt == 1 else "gpt-4o"))
        result = await run_agent(agent, "Is order A1 paid?", run_config=by_name(client))
        return crash_once(run, result.final_output)

    run_id = f"oai-http-model-change-{given_as}"
    with cassette("responses_tool_call.yaml") as http:
        with pytest.raises(Crash):
            await atide.run("support", workflow, run_id=run_id)
        with pytest.raises(InputMismatch, match=r"orders\.run/model\.request'.*new name"):
            await atide.run("support", workflow, run_id=run_id)
        assert http.play_count == 2, "the changed model was refused before it was asked"


async def test_a_stream_that_fails_midway_has_the_usage_it_reported_in_the_ledger_once(
    atide: AsyncTidebase, client: AsyncOpenAI
) -> None:
    agent = orders_agent(OpenAIResponsesModel(model="gpt-4.1", openai_client=client))

    async def workflow(run: AsyncRunContext, input: None) -> Any:
        streamed = run_agent_streamed(agent, "Why are there tides?")
        deltas = [
            e.data.delta
            async for e in streamed.stream_events()
            if e.type == "raw_response_event" and e.data.type == "response.output_text.delta"
        ]
        return [streamed.final_output, deltas]

    async def ledger() -> list[tuple[int | None, int | None]]:
        rows = await atide.usage.records("oai-http-stream-failed")
        return [(r.input_tokens, r.output_tokens) for r in rows]

    with cassette("responses_stream_failed.yaml") as http:
        # The SDK raises at OpenAI's response.failed event, which reports 42 + 3 tokens spent.
        with pytest.raises(ModelBehaviorError):
            await atide.run("support", workflow, run_id="oai-http-stream-failed")
        assert await ledger() == [(42, 3)]
        # Not a failure the plugin records (MODEL_ERRORS): the resumed run streams it again.
        resumed = await atide.run("support", workflow, run_id="oai-http-stream-failed")
        assert http.play_count == 2
    assert resumed == ["Tides follow the moon.", ["Tides ", "follow the moon."]]
    assert await ledger() == [(42, 3), (42, 6)]
