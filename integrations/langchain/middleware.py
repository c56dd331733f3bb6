"""``TidebaseMiddleware``: durable model and tool calls for ``langchain.agents.create_agent``.

    agent = create_agent(model, tools, middleware=[TidebaseMiddleware()])

Inside a run, each model call of the agent is replayed from its checkpoint or executed and
checkpointed with its usage; each tool call likewise (a tool made with ``durable_tool`` keeps
its own declarations and checkpoints itself). Put it last in ``middleware=[...]``, the
innermost layer, so it records what the model and the tools returned and the other middleware
run around it as usual. Needs the ``langchain`` package (LangChain's v1 agents).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
from langchain_core.load import dumps
from langchain_core.messages import SystemMessage, ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from tidebase_core.plugin import (
    AnyRunContext,
    current_run,
    decode,
    save_checkpoint,
    save_checkpoint_sync,
)

from .in_progress import ModelCall, claim
from .keys import Operation, model_call, prompt_digest
from .tools import PLAIN, DurableTool, call_async, call_sync
from .usage import usage_rows
from .values import Stored, unwrap

__all__ = ["TidebaseMiddleware"]

ToolResult = Any  # a ToolMessage, or a LangGraph Command


# Unparameterized: AgentMiddleware's type parameters differ across langchain 1.x releases.
class TidebaseMiddleware(AgentMiddleware):
    """Checkpoints a ``create_agent`` agent's model and tool calls in the active run."""

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse]
    ) -> ModelResponse:
        run = current_run()
        if run is None:
            return handler(request)
        op = _operation(run, request)
        stored = op.replay()
        if stored is not None:
            return _response(stored, request)
        call = ModelCall()
        with claim(call):
            response = handler(request)
        output, usage = _checkpoint(response, call)
        save_checkpoint_sync(run, op.allocate(), op.digest, output, usage=usage)
        return response

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        run = current_run()
        if run is None:
            return await handler(request)
        op = _operation(run, request)
        stored = op.replay()
        if stored is not None:
            return _response(stored, request)
        call = ModelCall()
        with claim(call):
            response = await handler(request)
        output, usage = _checkpoint(response, call)
        await save_checkpoint(run, op.allocate(), op.digest, output, usage=usage)
        return response

    def wrap_tool_call(
        self, request: Any, handler: Callable[[Any], ToolMessage | Any]
    ) -> ToolMessage | Any:
        run = current_run()
        if run is None or isinstance(request.tool, DurableTool):
            return handler(request)
        call = request.tool_call
        return call_sync(
            run, call["name"], call["args"], call["id"], PLAIN, lambda: handler(request)
        )

    async def awrap_tool_call(
        self, request: Any, handler: Callable[[Any], Awaitable[ToolMessage | Any]]
    ) -> ToolMessage | Any:
        run = current_run()
        if run is None or isinstance(request.tool, DurableTool):
            return await handler(request)
        call = request.tool_call

        async def body() -> Any:
            return await handler(request)

        return await call_async(run, call["name"], call["args"], call["id"], PLAIN, body)


def _operation(run: AnyRunContext, request: ModelRequest[Any]) -> Operation:
    """The model call's key and hash: its messages, tools, settings and model."""
    system = getattr(request, "system_message", None)  # langchain < 1.1: system_prompt only
    if system is None and request.system_prompt:
        system = SystemMessage(request.system_prompt)
    messages = [system, *request.messages] if system is not None else [*request.messages]
    prompt = dumps([m.model_copy(update={"id": None}) for m in messages])
    settings = {
        "tools": [_tool_schema(t) for t in request.tools],
        "tool_choice": request.tool_choice,
        "response_format": _schema_name(request.response_format),
        "model_settings": request.model_settings,
    }
    model = request.model._get_llm_string() + "---" + dumps(settings)
    return model_call(run, prompt_digest(prompt, model))


def _tool_schema(tool: BaseTool | dict[str, Any]) -> Any:
    return convert_to_openai_tool(tool) if isinstance(tool, BaseTool) else tool


def _schema_name(response_format: Any) -> str | None:
    if response_format is None:
        return None
    schema = getattr(response_format, "schema", response_format)
    return getattr(schema, "__qualname__", None) or repr(schema)


def _checkpoint(response: ModelResponse, call: ModelCall) -> tuple[Stored, list[dict[str, Any]]]:
    output = {"result": response.result, "structured_response": response.structured_response}
    return Stored(output), usage_rows(response.result, call)


def _response(stored: str, request: ModelRequest[Any]) -> ModelResponse:
    data = unwrap(decode(stored))
    structured = data["structured_response"]
    schema: Any = getattr(request.response_format, "schema", request.response_format)
    typed = isinstance(schema, type) and (
        issubclass(schema, pydantic.BaseModel) or dataclasses.is_dataclass(schema)
    )
    if structured is not None and typed:  # replay the type a fresh call returned
        structured = pydantic.TypeAdapter(schema).validate_python(structured)
    return ModelResponse(result=data["result"], structured_response=structured)
