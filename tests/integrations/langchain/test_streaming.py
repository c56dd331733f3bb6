"""Streaming inside a run is never re-executed on replay.

A completed stream replays as one chunk, whether it was a direct ``stream``/``astream`` on a
model or a chain, or LangGraph streaming the tokens of a model called inside a node. A
replayed call has no tokens to stream to callbacks. A stream that fails mid-way has the usage
it reported in the ledger, once, and its failure replays like a failed ``invoke``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase

from .conftest import Executions
from .scripted import MODEL, ScriptedChatModel, echo_script
from .test_models import Interrupted, interrupt_first_attempt


def test_a_completed_stream_replays_as_one_chunk(tide: Tidebase, executions: Executions) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record)
    seen: list[list[str]] = []

    def stream(run: RunContext, _: None) -> str:
        chunks = list(model.stream("the tides of March"))
        seen.append([str(c.content) for c in chunks])
        interrupt_first_attempt(run)
        merged = chunks[0]
        for chunk in chunks[1:]:
            merged += chunk
        return str(merged.content)

    with pytest.raises(Interrupted):
        tide.run("stream", stream, run_id="s1")
    answer = tide.run("stream", stream, run_id="s1")

    assert seen == [["echo:", " the", " tides", " of", " March"], ["echo: the tides of March"]]
    assert answer == "echo: the tides of March"
    assert executions == {"model": 1}
    (record,) = tide.usage.records("s1")
    assert (record.model, record.output_tokens) == (MODEL, 7)


async def test_astream_replays_with_its_tool_calls(
    atide: AsyncTidebase, executions: Executions
) -> None:
    model = ScriptedChatModel(record=executions.record)  # answers with a tool call

    async def stream(run: AsyncRunContext, _: None) -> list[Any]:
        chunks = [c async for c in model.astream("tides")]
        interrupt_first_attempt(run)
        assert isinstance(chunks[-1], AIMessageChunk)
        return [len(chunks), chunks[-1].tool_calls]

    with pytest.raises(Interrupted):
        await atide.run("astream", stream, run_id="s2")
    count, calls = await atide.run("astream", stream, run_id="s2")

    assert count == 1 and calls[0]["id"] == "call_search" and calls[0]["args"] == {"query": "tides"}
    assert executions == {"model": 1}


def test_a_stream_abandoned_midway_is_not_checkpointed(
    tide: Tidebase, executions: Executions
) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record)

    def first_word(run: RunContext, _: None) -> str:
        for chunk in model.stream("long answer"):
            word = str(chunk.content)
            break
        interrupt_first_attempt(run)
        return word

    with pytest.raises(Interrupted):
        tide.run("abandon", first_word, run_id="s3")
    assert tide.runs.steps("s3") == []
    assert tide.run("abandon", first_word, run_id="s3") == "echo:"
    assert executions == {"model": 2}


async def test_astream_events_over_a_chain_replays(
    atide: AsyncTidebase, executions: Executions
) -> None:
    chain = ChatPromptTemplate.from_template("Tell me about {topic}") | ScriptedChatModel(
        script=echo_script, record=executions.record
    )

    async def events(run: AsyncRunContext, _: None) -> list[str]:
        tokens, answer = [], ""
        async for event in chain.astream_events({"topic": "tides"}, version="v2"):
            if event["event"] == "on_chat_model_stream":
                tokens.append(str(event["data"]["chunk"].content))
            elif event["event"] == "on_chat_model_end":
                answer = str(event["data"]["output"].content)
        interrupt_first_attempt(run)
        return [answer, len(tokens)]

    with pytest.raises(Interrupted):
        await atide.run("events", events, run_id="s4")
    answer, tokens = await atide.run("events", events, run_id="s4")

    assert answer == "echo: Tell me about tides" and tokens == 0
    assert executions == {"model": 1}


def test_langgraph_message_streaming_inside_invoke_replays(
    tide: Tidebase, executions: Executions
) -> None:
    from langgraph.graph import END, START, StateGraph

    model = ScriptedChatModel(script=echo_script, record=executions.record)

    class State(TypedDict):
        question: str
        answer: str

    def answer(state: State) -> dict[str, str]:
        return {"answer": str(model.invoke(state["question"]).content)}

    graph = StateGraph(State).add_node("answer", answer)
    graph = graph.add_edge(START, "answer").add_edge("answer", END).compile()
    streamed: list[list[str]] = []

    def run_graph(run: RunContext, _: None) -> str:
        parts: list[str] = []
        final = ""
        for mode, data in graph.stream(
            {"question": "why tides?"}, stream_mode=["messages", "values"]
        ):
            if mode == "messages":
                message: BaseMessage = data[0]
                parts.append(str(message.content))
            else:
                final = data.get("answer", "")
        streamed.append(parts)
        interrupt_first_attempt(run)
        return final

    with pytest.raises(Interrupted):
        tide.run("graph", run_graph, run_id="s5")
    assert tide.run("graph", run_graph, run_id="s5") == "echo: why tides?"

    assert executions == {"model": 1}
    assert streamed[0] == ["echo:", " why", " tides?"]  # tokens, live
    assert "".join(streamed[1]) == "echo: why tides?"  # replayed whole


class Overloaded(Exception):
    """The provider failing mid-stream."""


class BreaksMidStream(ScriptedChatModel):
    """Reports its input tokens with the first chunk (as Anthropic's ``message_start`` does),
    then the provider fails."""

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        if self.record is not None:
            self.record("broken model")
        usage = UsageMetadata(input_tokens=12, output_tokens=1, total_tokens=13)
        yield ChatGenerationChunk(message=AIMessageChunk(content="The", usage_metadata=usage))
        raise Overloaded("503 mid-stream")


SPENT_BEFORE_THE_FAILURE = [(12, 1)]


def ledgered_once_then_replayed(
    tide: Tidebase, name: str, workflow: Any, run_id: str, executions: Executions, what: str
) -> None:
    """The first attempt (interrupted after the fallback answered) has the failed ``what``'s
    spend in the ledger; the resumed run replays both without sending either again."""
    with pytest.raises(Interrupted):
        tide.run(name, workflow, run_id=run_id)
    rows = tide.usage.records(run_id)
    assert [(r.input_tokens, r.output_tokens) for r in rows][:1] == SPENT_BEFORE_THE_FAILURE
    assert tide.run(name, workflow, run_id=run_id) == "echo: why tides?"
    assert executions == {"broken model": 1, "model": 1}, f"the failed {what} was not sent again"
    assert len(tide.usage.records(run_id)) == 2, f"one row for each {what}, once"


async def aledgered_once_then_replayed(
    atide: AsyncTidebase,
    name: str,
    workflow: Any,
    run_id: str,
    executions: Executions,
    what: str,
) -> None:
    """``ledgered_once_then_replayed`` for an async client."""
    with pytest.raises(Interrupted):
        await atide.run(name, workflow, run_id=run_id)
    rows = await atide.usage.records(run_id)
    assert [(r.input_tokens, r.output_tokens) for r in rows][:1] == SPENT_BEFORE_THE_FAILURE
    assert await atide.run(name, workflow, run_id=run_id) == "echo: why tides?"
    assert executions == {"broken model": 1, "model": 1}, f"the failed {what} was not sent again"
    assert len(await atide.usage.records(run_id)) == 2, f"one row for each {what}, once"


def test_a_stream_failing_midway_is_ledgered_once_and_its_fallback_replays(
    tide: Tidebase, executions: Executions
) -> None:
    broken = BreaksMidStream(record=executions.record)
    backup = ScriptedChatModel(script=echo_script, record=executions.record)

    def stream(run: RunContext, _: None) -> str:
        try:
            answer = "".join(str(c.content) for c in broken.stream("why tides?"))
        except Overloaded:
            answer = "".join(str(c.content) for c in backup.stream("why tides?"))
        interrupt_first_attempt(run)
        return answer

    ledgered_once_then_replayed(tide, "broken", stream, "s6", executions, "stream")


async def test_an_astream_failing_midway_is_ledgered_once_and_its_fallback_replays(
    atide: AsyncTidebase, executions: Executions
) -> None:
    broken = BreaksMidStream(record=executions.record)
    backup = ScriptedChatModel(script=echo_script, record=executions.record)

    async def stream(run: AsyncRunContext, _: None) -> str:
        try:
            answer = "".join([str(c.content) async for c in broken.astream("why tides?")])
        except Overloaded:
            answer = "".join([str(c.content) async for c in backup.astream("why tides?")])
        interrupt_first_attempt(run)
        return answer

    await aledgered_once_then_replayed(atide, "broken", stream, "s7", executions, "stream")


async def test_a_stream_langchain_runs_inside_ainvoke_failing_midway_is_ledgered_once(
    atide: AsyncTidebase, executions: Executions
) -> None:
    """``astream_events`` over code that calls ``ainvoke``: LangChain streams the call inside
    (for the events' token stream) and hands the chunks only to callbacks. The usage the
    stream reported before the provider failed is in the ledger once, and the failure replays
    without a new request."""
    broken = BreaksMidStream(record=executions.record)
    backup = ScriptedChatModel(script=echo_script, record=executions.record)

    async def ask(question: str) -> str:
        return str((await broken.ainvoke(question)).content)

    chain = RunnableLambda(ask)

    async def stream(run: AsyncRunContext, _: None) -> str:
        try:
            async for _ in chain.astream_events("why tides?", version="v2"):
                pass
        except Overloaded:
            answer = str((await backup.ainvoke("why tides?")).content)
        interrupt_first_attempt(run)
        return answer

    await aledgered_once_then_replayed(atide, "broken", stream, "s8", executions, "call")


def test_a_stream_langgraph_runs_inside_invoke_failing_midway_is_ledgered_once(
    tide: Tidebase, executions: Executions
) -> None:
    """The sync path: LangGraph's messages mode makes LangChain stream a node's ``invoke``."""
    from langgraph.graph import END, START, StateGraph

    broken = BreaksMidStream(record=executions.record)
    backup = ScriptedChatModel(script=echo_script, record=executions.record)

    class State(TypedDict):
        question: str
        answer: str

    def answer(state: State) -> dict[str, str]:
        try:
            return {"answer": str(broken.invoke(state["question"]).content)}
        except Overloaded:
            return {"answer": str(backup.invoke(state["question"]).content)}

    graph = StateGraph(State).add_node("answer", answer)
    graph = graph.add_edge(START, "answer").add_edge("answer", END).compile()

    def run_graph(run: RunContext, _: None) -> str:
        final = ""
        for mode, data in graph.stream(
            {"question": "why tides?"}, stream_mode=["messages", "values"]
        ):
            if mode == "values":
                final = data.get("answer", "")
        interrupt_first_attempt(run)
        return final

    ledgered_once_then_replayed(tide, "graph", run_graph, "s9", executions, "call")
