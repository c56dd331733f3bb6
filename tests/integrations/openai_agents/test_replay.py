"""A re-invoked run replays the agents' model calls and tool calls from their checkpoints.

Each workflow's first attempt fails after the agents finished (as a crash would); the
re-invoked run must execute nothing the agents already did and return what the first saw.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, TypeVar

import pytest
from agents import Agent, ModelSettings, RunContextWrapper, RunHooks, function_tool
from tidebase_openai_agents import current_run, is_durable_agent, is_durable_tool, run_agent

from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import InputMismatch

from .scripted import Scripted, Shop, call, message, support_agents

T = TypeVar("T")


class Crash(Exception):
    """Stands in for the process dying after the agents finished; carries what they returned."""


def crash_once(run: Any, value: T) -> T:
    if run.attempt == 1:
        raise Crash(value)
    return value


async def first_and_resumed(atide: AsyncTidebase, run_id: str, workflow: Any) -> tuple[Any, Any]:
    with pytest.raises(Crash) as crashed:
        await atide.run("support", workflow, run_id=run_id)
    return crashed.value.args[0], await atide.run("support", workflow, run_id=run_id)


async def test_a_resumed_run_executes_no_model_call_and_no_tool_again(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    triage = support_agents(lambda name: ran.update([name]))

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await run_agent(run, triage, "Refund order A1", context=Shop())
        return crash_once(run, result.final_output)

    first, resumed = await first_and_resumed(atide, "oai-replay", workflow)
    assert first == resumed == "Refunded 30 EUR for order A1 (R-1)."
    assert ran == {"triage": 2, "refunds": 2, "lookup_order": 1, "issue_refund": 1}
    assert [s.name for s in await atide.runs.steps("oai-replay")] == [
        # One runner: the handoff from triage to refunds stays in the run it started.
        "triage.run/model.request",
        "triage.run/tool.lookup_order.call_lookup",
        "triage.run/model.request#2",
        "triage.run/model.request#3",
        "triage.run/tool.issue_refund.call_refund",
        "triage.run/model.request#4",
    ]


async def test_the_ledger_holds_exactly_the_first_attempts_real_calls(
    atide: AsyncTidebase,
) -> None:
    triage = support_agents(lambda _: None)

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await run_agent(run, triage, "Refund order A1", context=Shop())
        return crash_once(run, result.final_output)

    await first_and_resumed(atide, "oai-ledger", workflow)
    rows = await atide.usage.records("oai-ledger")
    assert [(r.step_name, r.attempt, r.input_tokens, r.output_tokens) for r in rows] == [
        ("triage.run/model.request", 1, 100, 10),
        ("triage.run/model.request#2", 1, 101, 11),
        ("triage.run/model.request#3", 1, 102, 12),
        ("triage.run/model.request#4", 1, 103, 13),
    ]
    summary = await atide.usage.summary("oai-ledger")
    assert summary.total_tokens == 110 + 112 + 114 + 116


class Recorder(RunHooks[Any]):
    """The user's own hooks."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def on_agent_start(self, context: Any, agent: Any) -> None:
        self.seen.append(f"start {agent.name}")

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        self.seen.append(f"llm {agent.name}")

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: Any) -> None:
        self.seen.append(f"{tool.name} -> {result}")

    async def on_handoff(self, context: Any, from_agent: Any, to_agent: Any) -> None:
        self.seen.append(f"handoff {from_agent.name} -> {to_agent.name}")

    async def on_agent_end(self, context: Any, agent: Any, output: Any) -> None:
        self.seen.append(f"end {agent.name}")


async def test_user_hooks_get_every_callback_on_replay_and_run_events_are_not_logged_twice(
    atide: AsyncTidebase,
) -> None:
    triage = support_agents(lambda _: None)
    attempts: list[list[str]] = []

    async def workflow(run: AsyncRunContext, input: None) -> str:
        hooks = Recorder()
        attempts.append(hooks.seen)
        result = await run_agent(run, triage, "Refund order A1", context=Shop(), hooks=hooks)
        return crash_once(run, result.final_output)

    await first_and_resumed(atide, "oai-hooks", workflow)
    first, replayed = attempts
    assert replayed == first
    assert first == [
        "start triage",
        "llm triage",
        "lookup_order -> order A1: 30 EUR, paid",
        "llm triage",
        "handoff triage -> refunds",
        "start refunds",
        "llm refunds",
        "issue_refund -> refund of 30 EUR for A1: R-1",
        "llm refunds",
        "end refunds",
    ]
    events = await atide.runs.events("oai-hooks")
    logged = [
        (e.type, e.payload.get("tool") or e.payload.get("agent") or e.payload.get("to"))
        for e in events
        if e.type.startswith(("agent.", "tool."))
    ]
    assert logged == [
        ("agent.started", "triage"),
        ("tool.started", "lookup_order"),
        ("tool.ended", "lookup_order"),
        ("agent.handoff", "refunds"),
        ("agent.started", "refunds"),
        ("tool.started", "issue_refund"),
        ("tool.ended", "issue_refund"),
        ("agent.ended", "refunds"),
    ]


async def test_a_changed_prompt_is_refused_before_any_model_call(atide: AsyncTidebase) -> None:
    ran: Counter[str] = Counter()
    triage = support_agents(lambda name: ran.update([name]))

    async def workflow(run: AsyncRunContext, input: None) -> str:
        prompt = "Refund order A1" if run.attempt == 1 else "Refund order B2"
        result = await run_agent(run, triage, prompt, context=Shop())
        return crash_once(run, result.final_output)

    with pytest.raises(Crash):
        await atide.run("support", workflow, run_id="oai-drift")
    with pytest.raises(InputMismatch, match=r"model\.request"):
        await atide.run("support", workflow, run_id="oai-drift")
    assert ran["triage"] == 2, "the first attempt's calls only"


async def test_the_users_agents_tools_and_context_are_left_as_they_were(
    atide: AsyncTidebase,
) -> None:
    triage = support_agents(lambda _: None)
    refunds = triage.handoffs[0]
    before = (triage.model, list(triage.tools), list(triage.handoffs), refunds.model)
    tool_invoker = triage.tools[0].on_invoke_tool
    shop = Shop()

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await run_agent(run, triage, "Refund order A1", context=shop)
        assert result.context_wrapper.context is shop
        return result.final_output

    await atide.run("support", workflow, run_id="oai-untouched")
    assert (triage.model, triage.tools, triage.handoffs, refunds.model) == before
    assert triage.tools[0].on_invoke_tool is tool_invoker
    assert not is_durable_agent(triage) and not is_durable_tool(triage.tools[0])


async def test_tools_see_the_users_context_and_the_active_run(atide: AsyncTidebase) -> None:
    seen: list[Any] = []

    @function_tool
    async def whoami(ctx: RunContextWrapper[Shop]) -> str:
        """Who runs this tool."""
        run = current_run()
        assert run is not None
        seen.append((ctx.context, run.run_id, getattr(ctx, "tool_call_id", None)))
        return "ok"

    agent = Agent(
        name="solo",
        model=Scripted(
            "solo", {0: [call("whoami", {}, "call_1")], 1: [message("done")]}, lambda _: None
        ),
        tools=[whoami],
    )
    shop = Shop(currency="CHF")

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return (await run_agent(agent, "who?", context=shop)).final_output

    assert await atide.run("solo", workflow, run_id="oai-context") == "done"
    assert seen == [(shop, "oai-context", "call_1")]


async def test_a_model_call_the_sdk_retried_keeps_its_place_in_the_run(
    atide: AsyncTidebase,
) -> None:
    retry = pytest.importorskip("agents.retry")  # the SDK's own retries (ModelSettings.retry)
    ran: Counter[str] = Counter()

    class FlakyOnce(Scripted):
        async def get_response(self, *args: Any, **kw: Any) -> Any:
            ran["attempts"] += 1
            if ran["attempts"] == 1:
                raise ConnectionResetError("connection reset by peer")
            return await super().get_response(*args, **kw)

    agent = Agent(
        name="solo",
        model=FlakyOnce("solo", {0: [message("fine")]}, lambda n: ran.update([n])),
        model_settings=ModelSettings(
            retry=retry.ModelRetrySettings(max_retries=1, policy=lambda context: True)
        ),
    )

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return crash_once(run, (await run_agent(agent, "hello")).final_output)

    assert await first_and_resumed(atide, "oai-retried", workflow) == ("fine", "fine")
    # The resume replays the recorded failure (the SDK retries it again) and then the retry's
    # answer: the model is not called on resume, and the retry keeps its key.
    assert ran == {"attempts": 2, "solo": 1}
    steps = await atide.runs.steps("oai-retried")
    assert [(s.name, s.status) for s in steps] == [
        ("solo.run/model.request", "completed"),  # its checkpoint: the ConnectionResetError
        ("solo.run/model.request#2", "completed"),
    ]


def test_a_stored_response_comes_back_as_the_sdks_own_item_classes() -> None:
    """Output items are read back by their ``type`` (the union's discriminator): each kind as
    its own class, exactly as the SDK built it."""
    from agents import ModelResponse, Usage
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
        ResponseReasoningItem,
    )
    from openai.types.responses.response_reasoning_item import Summary
    from tidebase_openai_agents.responses import dump_response, load_response

    text = ResponseOutputText(type="output_text", text="hi", annotations=[])
    items: list[Any] = [
        ResponseReasoningItem(
            id="rs", type="reasoning", summary=[Summary(text="s", type="summary_text")]
        ),
        ResponseFunctionToolCall(
            id="fc", call_id="c", name="n", arguments="{}", type="function_call", status="completed"
        ),
        ResponseOutputMessage(
            id="m", type="message", role="assistant", status="completed", content=[text]
        ),
    ]
    stored = dump_response(ModelResponse(output=items, usage=Usage(requests=1), response_id="r"))
    loaded = load_response(stored)
    assert [type(item) for item in loaded.output] == [type(item) for item in items]
    assert loaded.output == items
    assert dump_response(loaded) == stored
