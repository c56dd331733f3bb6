"""A scripted model and a two-tool agent, shared by the in-process tests and the worker process.

The model answers turn n (the number of responses so far) with ``SCRIPT[n]`` and counts its
executions through ``record``; so do the tools. Tool calls carry no ``tool_call_id``, so the
framework gives each a random one: replays must not depend on them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import (
    ModelMessage,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel
from pydantic_ai.usage import RequestUsage
from tidebase_pydantic_ai import TidebaseDeps, TidebaseDurability

Record = Callable[[str], None]


def keys_of(names: list[str]) -> list[str]:
    """Step keys with the framework's random tool call ids (``.pyd_ai_…``, stable across
    replays because they come from the checkpointed response) shown as ``.<id>``."""
    return [re.sub(r"\.pyd_ai_[0-9a-f]+", ".<id>", name) for name in names]


def counting(ran: Counter[str]) -> Record:
    """A ``Record`` counting executions by name in ``ran``."""
    return lambda name: ran.update((name,))


SCRIPT = [
    ModelResponse(
        parts=[ToolCallPart("search_logs", {"service": "billing"})],
        usage=RequestUsage(input_tokens=120, output_tokens=15),
    ),
    ModelResponse(
        parts=[ToolCallPart("file_ticket", {"title": "billing 500s"})],
        usage=RequestUsage(input_tokens=200, output_tokens=25),
    ),
    ModelResponse(parts=[TextPart("filed")], usage=RequestUsage(input_tokens=260, output_tokens=5)),
]


def tool_returns(messages: list[ModelMessage]) -> list[str]:
    return [
        str(part.content)
        for message in messages
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


def scripted_model(record: Record, script: list[ModelResponse] = SCRIPT) -> FunctionModel:
    """Answers requests with ``script`` (recorded as "model") and streams (recorded as "stream")."""

    def answer(messages: list[ModelMessage]) -> ModelResponse:
        turn = sum(isinstance(m, ModelResponse) for m in messages)
        response = script[turn]
        if turn == len(script) - 1:  # the answer quotes what the tools returned
            text = " | ".join([response.text or "", *tool_returns(messages)])
            return ModelResponse(parts=[TextPart(text)], usage=response.usage)
        return response

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        record("model")
        return answer(messages)

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[Any]:
        record("stream")
        for index, part in enumerate(answer(messages).parts):
            if isinstance(part, ToolCallPart):
                yield {index: DeltaToolCall(name=part.tool_name, json_args=part.args_as_json_str())}
            elif isinstance(part, TextPart):
                for word in part.content.split(" "):
                    yield word + " "

    return FunctionModel(respond, stream_function=stream, model_name="gpt-4o")


@dataclass
class Deps(TidebaseDeps):
    pass


def triage_agent(record: Record, *, durable: bool = True) -> Agent[Deps, str]:
    """Two tools, called one per model turn: search_logs, then file_ticket."""
    agent = Agent(
        scripted_model(record),
        name="triage",
        deps_type=Deps,
        capabilities=[TidebaseDurability()] if durable else [],
    )

    @agent.tool
    async def search_logs(ctx: RunContext[Deps], service: str) -> str:
        record("search_logs")
        return f"{service}: 42 errors"

    @agent.tool
    async def file_ticket(ctx: RunContext[Deps], title: str) -> str:
        record("file_ticket")
        return f"TICKET-1 {title}"

    return agent
