"""``TidebaseMiddleware``: durable model and tool calls for ``langchain.agents.create_agent``.

    agent = create_agent(model, tools, middleware=[TidebaseMiddleware()])

Inside a run, each model call of the agent is one ``durable_call``: replayed from its
checkpoint (firing the chat-model callbacks as replayed, so ``astream_events`` and tracers
see every call) or executed and checkpointed with its usage; each tool call likewise (a
replayed one fires the tool callbacks the ToolNode's ``tool.invoke`` would; a tool made with
``durable_tool`` keeps its own declarations and checkpoints itself). Put it last in
``middleware=[...]``, the innermost layer, so it records what the model and the tools
returned and the other middleware run around it as usual. Needs the ``langchain`` package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic
import pydantic_core
from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
from langchain_core.load import dumps
from langchain_core.messages import BaseMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from langchain_core.runnables.config import ensure_config
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from tidebase_core.operations import Operation, Usage, durable_call, durable_call_sync
from tidebase_core.plugin import current_run, type_adapter

from .codec import MARK, REPLAYED, dump_value, load_value
from .digests import prompt_digest
from .models import (
    MODEL_CALL,
    MODEL_ERRORS,
    agent_name,
    content_identity,
    content_keyed,
    owning,
)
from .tools import PLAIN, DurableTool, ReplayedCall, call_async, call_sync, replayed_tool_call
from .usage import usage_rows

__all__ = ["TidebaseMiddleware"]


# Unparameterized: AgentMiddleware's type parameters differ across langchain 1.x releases.
class TidebaseMiddleware(AgentMiddleware):
    """Checkpoints a ``create_agent`` agent's model and tool calls in the active run."""

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse]
    ) -> ModelResponse:
        run = current_run()
        if run is None:
            return handler(request)
        call = _ModelCall(request)

        def execute() -> ModelResponse:
            with owning():  # the model's own wrapped call stands aside: one checkpoint
                return handler(request)

        op = dataclasses.replace(call.operation, on_replay=call.fire_replayed)
        identity = content_identity(call.digest)
        with content_keyed(identity):
            return durable_call_sync(op, execute, digest=call.digest, identity=identity, run=run)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        run = current_run()
        if run is None:
            return await handler(request)
        call = _ModelCall(request)
        replayed: list[ModelResponse] = []

        async def execute() -> ModelResponse:
            with owning():
                return await handler(request)

        # Callbacks of an async agent are async (astream_events): fired once the call returns.
        op = dataclasses.replace(call.operation, on_replay=replayed.append)
        identity = content_identity(call.digest)
        with content_keyed(identity):
            response = await durable_call(
                op, execute, digest=call.digest, identity=identity, run=run
            )
        if replayed:
            await call.afire_replayed(response)
        return response

    def wrap_tool_call(
        self, request: Any, handler: Callable[[Any], ToolMessage | Any]
    ) -> ToolMessage | Any:
        run = current_run()
        if run is None or isinstance(request.tool, DurableTool):
            return handler(request)
        call = request.tool_call

        def replay() -> ReplayedCall | None:  # fires what the ToolNode's tool.invoke would
            return replayed_tool_call(request.tool, call, _tool_config(request))

        return call_sync(
            run, call["name"], call["args"], call["id"], PLAIN, lambda: handler(request), replay
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

        def replay() -> ReplayedCall | None:
            return replayed_tool_call(request.tool, call, _tool_config(request))

        return await call_async(run, call["name"], call["args"], call["id"], PLAIN, body, replay)


def _tool_config(request: Any) -> Any:
    """The config the ToolNode invokes the tool with (its runtime's; else the node's own)."""
    config = getattr(getattr(request, "runtime", None), "config", None)
    return config if config is not None else ensure_config()


class _ModelCall:
    """One model call of the agent: its input hash, its operation spec, its replay."""

    def __init__(self, request: ModelRequest[Any]) -> None:
        self.request = request
        system = getattr(request, "system_message", None)  # langchain < 1.1: system_prompt
        if system is None and request.system_prompt:
            system = SystemMessage(request.system_prompt)
        self.messages: list[BaseMessage] = (
            [system, *request.messages] if system is not None else [*request.messages]
        )
        settings = {
            "tools": [_tool_schema(t) for t in request.tools],
            "tool_choice": request.tool_choice,
            "response_format": _schema_name(request.response_format),
            "model_settings": request.model_settings,
        }
        model = request.model
        self.digest = prompt_digest(self.messages, model._get_llm_string(), dumps(settings))
        params = model._get_ls_params()
        provider, name = params.get("ls_provider"), params.get("ls_model_name")
        agent = agent_name(ensure_config().get("metadata"))

        def usage(response: ModelResponse) -> list[Usage]:
            return usage_rows(response.result, provider, name, agent)

        self.operation: Operation[ModelResponse] = Operation(
            MODEL_CALL, dump=_dump_response, load=self.load, usage=usage, errors=MODEL_ERRORS
        )

    def load(self, data: dict[str, Any]) -> ModelResponse:
        structured = data["structured_response"]
        schema: Any = getattr(self.request.response_format, "schema", self.request.response_format)
        typed = isinstance(schema, type) and (
            issubclass(schema, pydantic.BaseModel) or dataclasses.is_dataclass(schema)
        )
        if structured is not None and typed:  # replay the type a fresh call returned
            structured = type_adapter(schema).validate_python(structured)
        return ModelResponse(result=load_value(data["result"]), structured_response=structured)

    # A replayed call fires what LangChain fires for a live one (start, then end with the
    # recorded message), on the agent node's callbacks, marked replayed.

    def _start_arguments(self) -> tuple[dict[str, Any], dict[str, Any]]:
        model = self.request.model
        config = ensure_config()  # the model node's config: its callbacks, tags, metadata
        configure = {
            "inheritable_callbacks": config.get("callbacks"),
            "inheritable_tags": config.get("tags"),
            "inheritable_metadata": {**config.get("metadata", {}), **model._get_ls_params()},
        }
        start = {
            "serialized": getattr(model, "_serialized", None) or {},
            "messages": [self.messages],
            "invocation_params": model._get_invocation_params(),
            "name": config.get("run_name"),
        }
        return configure, start

    def fire_replayed(self, response: ModelResponse) -> None:
        configure, start = self._start_arguments()
        manager = CallbackManager.configure(**configure)
        for run_manager in manager.on_chat_model_start(**start):
            run_manager.on_llm_end(_llm_result(response))

    async def afire_replayed(self, response: ModelResponse) -> None:
        configure, start = self._start_arguments()
        manager = AsyncCallbackManager.configure(**configure)
        for run_manager in await manager.on_chat_model_start(**start):
            await run_manager.on_llm_end(_llm_result(response))


def _llm_result(response: ModelResponse) -> LLMResult:
    generations: list[Generation] = [
        ChatGeneration(message=m, generation_info={MARK: REPLAYED}) for m in response.result
    ]
    return LLMResult(generations=[generations])


def _dump_response(response: ModelResponse) -> dict[str, Any]:
    return {
        "result": dump_value(list(response.result)),
        "structured_response": pydantic_core.to_jsonable_python(response.structured_response),
    }


def _tool_schema(tool: BaseTool | dict[str, Any]) -> Any:
    return convert_to_openai_tool(tool) if isinstance(tool, BaseTool) else tool


def _schema_name(response_format: Any) -> str | None:
    if response_format is None:
        return None
    schema = getattr(response_format, "schema", response_format)
    return getattr(schema, "__qualname__", None) or repr(schema)
