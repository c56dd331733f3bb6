"""Streamed runs: a completed model stream is a checkpoint, and a replay streams it back."""

from __future__ import annotations

from collections import Counter
from typing import Any

from tidebase_openai_agents import run_agent, run_agent_streamed

from tidebase.aio import AsyncRunContext, AsyncTidebase

from .scripted import Shop, support_agents
from .test_replay import crash_once, first_and_resumed

ANSWER = "Refunded 30 EUR for order A1 (R-1)."


async def stream(run: AsyncRunContext, triage: Any) -> dict[str, Any]:
    streamed = run_agent_streamed(run, triage, "Refund order A1", context=Shop())
    raw = [e.data.type async for e in streamed.stream_events() if e.type == "raw_response_event"]
    items = [item.type for item in streamed.new_items]
    return {"output": streamed.final_output, "raw": raw, "items": items}


async def test_a_replayed_stream_yields_each_recorded_response_once_without_calling_the_model(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    triage = support_agents(lambda name: ran.update([name]))

    async def workflow(run: AsyncRunContext, input: None) -> dict[str, Any]:
        return crash_once(run, await stream(run, triage))

    first, resumed = await first_and_resumed(atide, "oai-stream", workflow)
    assert first["output"] == resumed["output"] == ANSWER
    assert first["items"] == resumed["items"]
    assert "response.output_text.delta" in first["raw"]
    assert resumed["raw"] == ["response.completed"] * 4, "no token deltas on replay"
    assert ran == {"triage": 2, "refunds": 2, "lookup_order": 1, "issue_refund": 1}
    usage = await atide.usage.records("oai-stream")
    assert [r.input_tokens for r in usage] == [100, 101, 102, 103]


async def test_a_run_made_without_streaming_replays_as_a_stream(atide: AsyncTidebase) -> None:
    ran: Counter[str] = Counter()
    triage = support_agents(lambda name: ran.update([name]))

    async def workflow(run: AsyncRunContext, input: None) -> Any:
        if run.attempt == 1:
            result = await run_agent(run, triage, "Refund order A1", context=Shop())
            return crash_once(run, result.final_output)
        return (await stream(run, triage))["output"]

    first, resumed = await first_and_resumed(atide, "oai-mixed", workflow)
    assert first == resumed == ANSWER
    assert ran == {"triage": 2, "refunds": 2, "lookup_order": 1, "issue_refund": 1}
