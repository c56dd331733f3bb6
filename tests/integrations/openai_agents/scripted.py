"""Offline models and agents for the plugin's tests.

``Scripted`` is a real ``agents.Model`` that answers by the state of the conversation (how many
tool results its input holds), not by how often it was called: a replayed conversation skips
calls, and must still reach the same answer in a new process.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import openai
from agents import (
    Agent,
    Model,
    ModelResponse,
    RunContextWrapper,
    Usage,
    function_tool,
)
from openai.types.responses import Response as OpenAIResponse
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputItemDoneEvent,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseUsage,
)

Item = Any
OnCall = Callable[[str], None]


def unavailable(message: str = "Service Unavailable") -> openai.InternalServerError:
    """The provider's 503, as the openai client raises it: its response is one of the HTTP
    library the installed client is built on (httpx; httpx2 from openai 3)."""
    http: Any = importlib.import_module(
        "httpx2" if int(openai.__version__.split(".")[0]) >= 3 else "httpx"
    )
    request = http.Request("POST", "https://api.openai.com/v1/responses")
    response = http.Response(503, request=request, headers={"x-request-id": "req_503"})
    return openai.InternalServerError(message, response=response, body={"message": "overloaded"})


def message(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg_1",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(type="output_text", text=text, annotations=[], logprobs=[])],
    )


def call(name: str, arguments: Mapping[str, Any], call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=f"fc_{call_id}",
        call_id=call_id,
        type="function_call",
        name=name,
        arguments=json.dumps(arguments),
        status="completed",
    )


def tool_results(input: Any) -> int:
    if isinstance(input, str):
        return 0
    return sum(1 for item in input if _get(item, "type") == "function_call_output")


class Scripted(Model):
    """``turns[n]`` answers a request whose input holds n tool results."""

    def __init__(
        self,
        name: str,
        turns: Mapping[int, Sequence[Item]],
        on_call: OnCall,
        on_delta: OnCall = lambda _: None,
    ) -> None:
        self.name = name
        self.turns = turns
        self.on_call = on_call
        self.on_delta = on_delta  # told each text delta a stream yields

    async def get_response(
        self, system_instructions: Any, input: Any, *args: Any, **kw: Any
    ) -> Any:
        self.on_call(self.name)
        n = tool_results(input)
        if n not in self.turns:
            raise AssertionError(f"model {self.name!r} has no turn for {n} tool results")
        return ModelResponse(
            output=list(self.turns[n]),
            usage=Usage(
                requests=1, input_tokens=100 + n, output_tokens=10 + n, total_tokens=110 + 2 * n
            ),
            response_id=f"resp_{self.name}_{n}",
        )

    async def stream_response(self, *args: Any, **kw: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        response = await self.get_response(*args, **kw)
        for index, item in enumerate(response.output):
            if isinstance(item, ResponseOutputMessage):
                for word in item.content[0].text.split(" "):  # type: ignore[union-attr]
                    yield ResponseTextDeltaEvent.model_construct(
                        type="response.output_text.delta",
                        item_id=item.id,
                        output_index=index,
                        content_index=0,
                        delta=word + " ",
                        logprobs=[],
                        sequence_number=index,
                    )
                    self.on_delta(word)
            yield ResponseOutputItemDoneEvent.model_construct(
                type="response.output_item.done",
                item=item,
                output_index=index,
                sequence_number=index,
            )
        u = response.usage
        yield ResponseCompletedEvent.model_construct(
            type="response.completed",
            sequence_number=len(response.output),
            response=OpenAIResponse.model_construct(
                id=response.response_id,
                created_at=0,
                model=self.name,
                object="response",
                output=response.output,
                tool_choice="auto",
                tools=[],
                top_p=None,
                parallel_tool_calls=True,
                status="completed",
                usage=ResponseUsage.model_construct(
                    input_tokens=u.input_tokens,
                    input_tokens_details=u.input_tokens_details,
                    output_tokens=u.output_tokens,
                    output_tokens_details=u.output_tokens_details,
                    total_tokens=u.total_tokens,
                ),
            ),
        )


@dataclass
class Shop:
    """The user's own ``context=`` object: it must reach the tools unchanged."""

    currency: str = "EUR"


def support_agents(on_call: OnCall, on_delta: OnCall = lambda _: None) -> Agent[Shop]:
    """A triage agent that looks the order up, then hands off to a refunds agent.

    Model calls in order: triage (lookup_order), triage (handoff), refunds (issue_refund),
    refunds (final answer).
    """

    @function_tool
    async def lookup_order(ctx: RunContextWrapper[Shop], order_id: str) -> str:
        """Look an order up."""
        on_call("lookup_order")
        return f"order {order_id}: 30 {ctx.context.currency}, paid"

    @function_tool
    async def issue_refund(ctx: RunContextWrapper[Shop], order_id: str, amount: int) -> str:
        """Refund an order."""
        on_call("issue_refund")
        return f"refund of {amount} {ctx.context.currency} for {order_id}: R-1"

    refunds: Agent[Shop] = Agent(
        name="refunds",
        instructions="Issue refunds.",
        model=Scripted(
            "refunds",
            {
                2: [call("issue_refund", {"order_id": "A1", "amount": 30}, "call_refund")],
                3: [message("Refunded 30 EUR for order A1 (R-1).")],
            },
            on_call,
            on_delta,
        ),
        tools=[issue_refund],
    )
    return Agent(
        name="triage",
        instructions="Route refund requests.",
        model=Scripted(
            "triage",
            {
                0: [call("lookup_order", {"order_id": "A1"}, "call_lookup")],
                1: [call("transfer_to_refunds", {}, "call_handoff")],
            },
            on_call,
        ),
        tools=[lookup_order],
        handoffs=[refunds],
    )


def _get(item: Any, field: str) -> Any:
    return item.get(field) if isinstance(item, dict) else getattr(item, field, None)
