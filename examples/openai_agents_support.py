"""Customer support with durable OpenAI Agents SDK agents: triage, hand off, approve, refund.

    pip install -e '.[openai-agents]'
    python examples/openai_agents_support.py [run id]

A triage agent looks the order up and hands off to a refunds agent, whose refund tool moves
money: it declares its side effect and an idempotency key, and needs approval. Every model call
and tool call is a checkpointed step of the run, and each model call's tokens land in the usage
ledger. Runs offline: a small scripted model plays both agents (set OPENAI_API_KEY to use
gpt-4.1-mini instead).

The run stops at the refund's approval gate and prints a one-line command to approve it from a
second terminal. FAIL_AT=lookup_order (or FAIL_AT=issue_refund) kills the process inside that
tool: run it again with the same run id (without FAIL_AT) and the agents resume there, the
finished model calls and tools replayed, not executed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

from agents import (
    Agent,
    Model,
    ModelResponse,
    RunContextWrapper,
    Usage,
    function_tool,
    set_tracing_disabled,
)
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from tidebase_openai_agents import durable_tool, run_agent

from tidebase.aio import AsyncRunContext, AsyncTidebase


def fail_here(where: str) -> None:
    if os.environ.get("FAIL_AT") == where:
        print(f"  FAIL_AT={where}: killing this process with SIGKILL", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


@function_tool
async def lookup_order(order_id: str) -> str:
    """Look an order up by its id."""
    print(f"  executing lookup_order({order_id})", flush=True)
    fail_here("lookup_order")
    return json.dumps({"order": order_id, "amount_eur": 30, "status": "paid"})


@durable_tool(
    side_effects=["payments"],
    # The payment provider deduplicates on this key, so running the call again after a crash
    # in the middle of it is safe; Tidebase records it on the step.
    idempotency_key=lambda ctx, arguments: f"refund-{ctx.tool_call_id}",
)
@function_tool(needs_approval=True)
async def issue_refund(ctx: RunContextWrapper[Any], order_id: str, amount_eur: int) -> str:
    """Refund an order (moves money: needs approval)."""
    print(f"  executing issue_refund({order_id}, {amount_eur})", flush=True)
    fail_here("issue_refund")
    return f"refund R-{order_id} of {amount_eur} EUR issued"


class ScriptedSupportModel(Model):
    """Plays an agent offline: answers by how many tool results the conversation holds."""

    def __init__(self, turns: dict[int, Any]) -> None:
        self.turns = turns

    async def get_response(self, system_instructions: Any, input: Any, *a: Any, **kw: Any) -> Any:
        done = [i.get("type") for i in input if isinstance(i, dict)].count("function_call_output")
        print(f"  model call ({done} tool results so far)", flush=True)
        tokens = 200 + 40 * done
        usage = Usage(requests=1, input_tokens=tokens, output_tokens=25, total_tokens=tokens + 25)
        return ModelResponse(output=[self.turns[done]], usage=usage, response_id=f"resp_{done}")

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError("this example does not stream")


def call(name: str, arguments: dict[str, Any], call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        type="function_call", name=name, arguments=json.dumps(arguments), call_id=call_id
    )


def say(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg_1",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])],
    )


def support_agents() -> Agent[Any]:
    real = bool(os.environ.get("OPENAI_API_KEY"))
    refunds: Agent[Any] = Agent(
        name="refunds",
        instructions="Refund the order the customer asks about, then confirm in one sentence.",
        tools=[issue_refund],
        model="gpt-4.1-mini"
        if real
        else ScriptedSupportModel(
            {
                2: call("issue_refund", {"order_id": "A1", "amount_eur": 30}, "call_refund"),
                3: say("Your refund of 30 EUR for order A1 is on its way."),
            }
        ),
    )
    return Agent(
        name="triage",
        instructions="Look the order up, then hand refund requests to the refunds agent.",
        tools=[lookup_order],
        handoffs=[refunds],
        model="gpt-4.1-mini"
        if real
        else ScriptedSupportModel(
            {
                0: call("lookup_order", {"order_id": "A1"}, "call_lookup"),
                1: call("transfer_to_refunds", {}, "call_handoff"),
            }
        ),
    )


async def support(run: AsyncRunContext, request: str) -> str:
    print(
        "  (the refund waits for approval; in another terminal:\n"
        f'    python -c "import tidebase; t = tidebase.Tidebase(); '
        f"[t.gates.resolve(g.run_id, g.name, 'approved', actor='you') "
        f"for g in t.gates.list(status='pending', run_id='{run.run_id}')]\")",
        flush=True,
    )
    result = await run_agent(run, support_agents(), request)
    return str(result.final_output)


async def main() -> None:
    set_tracing_disabled(not os.environ.get("OPENAI_API_KEY"))
    run_id = sys.argv[1] if len(sys.argv) > 1 else f"support-{uuid.uuid4().hex[:8]}"
    print(f"run {run_id}   (resume with: python examples/openai_agents_support.py {run_id})")
    async with AsyncTidebase() as tide:
        answer = await tide.run("support", support, run_id=run_id, input="Refund my order A1")
        print(f"answer: {answer}")
        steps = await tide.runs.steps(run_id)
        print("steps:  " + ", ".join(f"{s.name} (attempt {s.attempt})" for s in steps))
        usage = await tide.usage.summary(run_id)
        print(f"usage:  {usage.calls} model calls, {usage.total_tokens} tokens")


if __name__ == "__main__":
    asyncio.run(main())
