"""Streaming inside a run is never re-executed on replay.

A completed stream replays as one chunk, whether it was a direct ``stream``/``astream`` on a
model or a chain, or LangGraph streaming the tokens of a model called inside a node. A
replayed call has no tokens to stream to callbacks.
"""

from __future__ import annotations

from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.prompts import ChatPromptTemplate

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
