"""Guardrails are steps, and tools that need approval wait at a gate of the run."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    function_tool,
    input_guardrail,
    output_guardrail,
)
from pydantic import BaseModel
from tidebase_openai_agents import run_agent

from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import GatePending

from .scripted import Scripted, call, message
from .test_replay import crash_once, first_and_resumed


class Verdict(BaseModel):
    reason: str


def guarded_agent(ran: Counter[str], *, trip: bool = False) -> Agent[Any]:
    @input_guardrail
    async def no_spam(ctx: Any, agent: Any, input: Any) -> GuardrailFunctionOutput:
        ran["no_spam"] += 1  # a guardrail often runs a model of its own: it must not rerun
        return GuardrailFunctionOutput(
            output_info=Verdict(reason="looks fine"), tripwire_triggered=trip
        )

    @output_guardrail
    async def polite(ctx: Any, agent: Any, output: Any) -> GuardrailFunctionOutput:
        ran["polite"] += 1
        return GuardrailFunctionOutput(output_info={"checked": output}, tripwire_triggered=False)

    return Agent(
        name="guarded",
        model=Scripted("guarded", {0: [message("hello")]}, lambda n: ran.update([n])),
        input_guardrails=[no_spam],
        output_guardrails=[polite],
    )


async def test_guardrail_verdicts_are_replayed_without_running_the_guardrails(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    agent = guarded_agent(ran)

    async def workflow(run: AsyncRunContext, input: None) -> Any:
        result = await run_agent(agent, "hi")
        infos = [g.output.output_info for g in result.input_guardrail_results]
        assert infos == [Verdict(reason="looks fine")]
        return crash_once(run, result.final_output)

    assert await first_and_resumed(atide, "oai-guard", workflow) == ("hello", "hello")
    assert ran == {"guarded": 1, "no_spam": 1, "polite": 1}


async def test_a_tripped_guardrail_trips_again_on_resume_without_running(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    agent = guarded_agent(ran, trip=True)

    async def workflow(run: AsyncRunContext, input: None) -> Any:
        return (await run_agent(agent, "spam")).final_output

    for _ in range(2):
        with pytest.raises(InputGuardrailTripwireTriggered):
            await atide.run("guarded", workflow, run_id="oai-trip")
    assert ran["no_spam"] == 1


def approval_agent(ran: Counter[str]) -> Agent[Any]:
    @function_tool(needs_approval=True)
    async def delete_account(user: str) -> str:
        """Delete a user's account."""
        ran["delete_account"] += 1
        return f"deleted {user}"

    return Agent(
        name="admin",
        model=Scripted(
            "admin",
            {
                0: [call("delete_account", {"user": "bob"}, "call_del")],
                1: [message("bob's account is handled")],
            },
            lambda n: ran.update([n]),
        ),
        tools=[delete_account],
    )


@pytest.mark.parametrize(("decision", "deleted"), [("approved", 1), ("rejected", 0)])
async def test_a_tool_needing_approval_parks_the_run_at_a_gate_and_resumes_on_the_decision(
    atide: AsyncTidebase, decision: str, deleted: int
) -> None:
    ran: Counter[str] = Counter()
    agent = approval_agent(ran)
    run_id = f"oai-approve-{decision}"

    async def workflow(run: AsyncRunContext, input: None) -> Any:
        result = await run_agent(agent, "delete bob", wait_for_approval=False)
        return [i.output for i in result.new_items if i.type == "tool_call_output_item"]

    with pytest.raises(GatePending):
        await atide.run("admin", workflow, run_id=run_id)
    [gate] = await atide.gates.list(status="pending", run_id=run_id)
    assert gate.name == "approve.delete_account.call_del"
    assert (await atide.runs.get(run_id)).status == "waiting"
    await atide.gates.resolve(run_id, gate.name, decision, actor="alice")

    outputs = await atide.run("admin", workflow, run_id=run_id)
    assert (ran["admin"], ran["delete_account"]) == (2, deleted)
    assert ("deleted bob" in outputs) is bool(deleted)
