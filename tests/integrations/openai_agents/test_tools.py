"""Function tools run as steps: once per call, replayed with the result they first gave."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from agents import (
    Agent,
    FunctionTool,
    RunContextWrapper,
    ToolCallOutputItem,
    UserError,
    function_tool,
)
from agents.tool_context import ToolContext
from pydantic import BaseModel
from tidebase_openai_agents import durable_tool, run_agent

from tidebase.aio import AsyncRunContext, AsyncTidebase

from .scripted import Scripted, call, message
from .test_replay import Crash, crash_once, first_and_resumed


def solo(tools: list[Any], turns: dict[int, list[Any]], **agent_options: Any) -> Agent[Any]:
    return Agent(
        name="solo", model=Scripted("solo", turns, lambda _: None), tools=tools, **agent_options
    )


def outputs(result: Any) -> dict[str, Any]:
    """call_id -> the tool output the model was given."""
    return {
        item["call_id"]: item["output"]
        for item in result.to_input_list()
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }


async def test_parallel_calls_with_identical_arguments_keep_their_own_results(
    atide: AsyncTidebase,
) -> None:
    ticks: list[str] = []

    @function_tool
    async def clock() -> str:
        """The next tick."""
        ticks.append(f"tick{len(ticks) + 1}")
        return ticks[-1]

    agent = solo(
        [clock],
        {0: [call("clock", {}, "call_a"), call("clock", {}, "call_b")], 2: [message("ok")]},
    )

    async def workflow(run: AsyncRunContext, input: None) -> dict[str, Any]:
        return crash_once(run, outputs(await run_agent(agent, "two ticks")))

    first, resumed = await first_and_resumed(atide, "oai-parallel", workflow)
    assert first == resumed and sorted(first.values()) == ["tick1", "tick2"]
    assert len(ticks) == 2


async def test_a_failure_the_tool_handles_is_stored_as_its_result_and_not_retried(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()

    @function_tool
    async def flaky() -> str:
        """Fails."""
        ran["flaky"] += 1
        raise RuntimeError("backend down")

    agent = solo([flaky], {0: [call("flaky", {}, "call_f")], 1: [message("sorry")]})

    async def workflow(run: AsyncRunContext, input: None) -> dict[str, Any]:
        return crash_once(run, outputs(await run_agent(agent, "try")))

    first, resumed = await first_and_resumed(atide, "oai-handled", workflow)
    assert first == resumed
    assert "error occurred" in first["call_f"].lower()
    assert ran == {"flaky": 1}


async def test_an_unhandled_tool_error_fails_the_run_as_the_sdk_says_and_reruns_on_resume(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()

    @function_tool(failure_error_function=None)
    async def strict() -> str:
        """Fails the first time."""
        ran["strict"] += 1
        if ran["strict"] == 1:
            raise LookupError("no such order")
        return "found"

    agent = solo([strict], {0: [call("strict", {}, "call_s")], 1: [message("found it")]})

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return (await run_agent(agent, "look")).final_output

    with pytest.raises(UserError, match="no such order") as failed:
        await atide.run("solo", workflow, run_id="oai-unhandled")
    assert isinstance(failed.value.__cause__, LookupError), "the SDK saw the tool's own error"
    [step] = [
        s for s in await atide.runs.steps("oai-unhandled") if s.name.startswith("solo.run/tool.")
    ]
    assert (step.status, step.resume_decision) == ("failed", "safe_replay")
    assert await atide.run("solo", workflow, run_id="oai-unhandled") == "found it"
    assert ran == {"strict": 2}


class Quote(BaseModel):
    sku: str
    price: float


async def test_a_replayed_result_comes_back_as_the_type_the_tool_returned(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()

    async def invoke(ctx: ToolContext[Any], arguments: str) -> Quote:
        ran["quote"] += 1
        return Quote(sku="X1", price=9.5)

    quote = FunctionTool(
        name="quote",
        description="Price a SKU.",
        params_json_schema={"type": "object", "properties": {}, "additionalProperties": False},
        on_invoke_tool=invoke,
    )
    agent = solo([quote], {0: [call("quote", {}, "call_q")], 1: [message("9.5")]})

    async def workflow(run: AsyncRunContext, input: None) -> Any:
        result = await run_agent(agent, "price X1")
        [output] = [i.output for i in result.new_items if isinstance(i, ToolCallOutputItem)]
        assert output == Quote(sku="X1", price=9.5)  # the model itself, first and replayed
        return crash_once(run, output.price)

    assert await first_and_resumed(atide, "oai-typed", workflow) == (9.5, 9.5)
    assert ran == {"quote": 1}


async def test_a_hand_built_tool_made_durable_gets_the_full_tool_context(
    atide: AsyncTidebase,
) -> None:
    calls: list[tuple[str, str]] = []

    async def invoke(ctx: ToolContext[Any], arguments: str) -> str:
        calls.append((ctx.tool_call_id, arguments))
        return "added"

    add = durable_tool(
        FunctionTool(
            name="add",
            description="Add an item.",
            params_json_schema={"type": "object", "properties": {}, "additionalProperties": False},
            on_invoke_tool=invoke,
        )
    )
    agent = solo([add], {0: [call("add", {}, "call_add")], 1: [message("added it")]})

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return crash_once(run, (await run_agent(agent, "add")).final_output)

    assert await first_and_resumed(atide, "oai-hand-built", workflow) == ("added it", "added it")
    assert calls == [("call_add", "{}")]


async def test_a_durable_tool_declares_its_side_effects_on_its_step(atide: AsyncTidebase) -> None:
    @durable_tool(
        side_effects=["payments"], idempotency_key=lambda ctx, args: f"refund-{ctx.tool_call_id}"
    )
    @function_tool
    async def refund(ctx: RunContextWrapper[Any], order_id: str) -> str:
        """Refund an order."""
        return f"refunded {order_id}"

    agent = solo([refund], {0: [call("refund", {"order_id": "A1"}, "call_r")], 1: [message("ok")]})

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return (await run_agent(agent, "refund A1")).final_output

    assert await atide.run("solo", workflow, run_id="oai-effects") == "ok"
    [step] = [
        s for s in await atide.runs.steps("oai-effects") if s.name.startswith("solo.run/tool.")
    ]
    assert (step.name, step.idempotency_key) == ("solo.run/tool.refund.call_r", "refund-call_r")


async def test_a_tool_call_is_two_statements_its_ended_event_written_with_its_checkpoint(
    atide: AsyncTidebase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``tool.started`` is written when the tool starts; ``tool.ended`` rides on the tool's
    checkpoint (same statement, the log entry just before the checkpoint's), so a tool call
    costs two round trips, not three. A replay writes neither, and logs nothing twice."""
    from tidebase_core._async.store import AsyncStoreConnection

    @function_tool
    async def lookup(order_id: str) -> str:
        """Look an order up."""
        return f"order {order_id}: paid"

    agent = solo(
        [lookup], {0: [call("lookup", {"order_id": "A1"}, "call_lookup")], 1: [message("ok")]}
    )
    sent: list[str] = []
    execute = AsyncStoreConnection._send

    async def counting(self: AsyncStoreConnection, query: str, params: Any) -> Any:
        sent.append(query)
        return await execute(self, query, params)

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return crash_once(run, (await run_agent(agent, "look A1 up")).final_output)

    monkeypatch.setattr(AsyncStoreConnection, "_send", counting)
    with pytest.raises(Crash):
        await atide.run("support", workflow, run_id="oai-tool-ended")
    q = atide._store.q
    events_emitted = sent.count(q.emit_event)
    # agent.started, tool.started, agent.ended: no statement of its own for tool.ended.
    assert events_emitted == 3
    # Two model calls (with their usage) and the tool call (with its tool.ended).
    assert sent.count(q.write_checkpoint_with_entries) == 3

    events = await atide.runs.events("oai-tool-ended")
    (step,) = [s for s in await atide.runs.steps("oai-tool-ended") if "tool." in s.name]
    (ended,) = [e for e in events if e.type == "tool.ended"]
    assert ended.seq == step.seq - 1
    assert ended.payload["tool"] == "lookup"
    assert ended.payload["call_id"] == "call_lookup"
    assert ended.payload["result"] == "order A1: paid"

    sent.clear()
    assert await atide.run("support", workflow, run_id="oai-tool-ended") == "ok"
    assert q.write_checkpoint_with_entries not in sent and q.emit_event not in sent  # replayed
    again = await atide.runs.events("oai-tool-ended")
    assert [e.type for e in again].count("tool.ended") == 1
