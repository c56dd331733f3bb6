"""A scripted chat model and two tools for the LangChain tests, the worker and nothing else.

``ScriptedChatModel`` answers from the conversation so far (as a real model at temperature 0
would), reports usage the way providers do, binds tools and streams one chunk that carries
tool calls and usage (``GenericFakeChatModel``'s own stream drops both). Every real call is
passed to ``record`` so a test can count executions independently of the database.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool

MODEL = "gpt-4o-mini"
Record = Callable[[str], None]


def research_script(messages: Sequence[BaseMessage]) -> AIMessage:
    """search the question → save a note → answer (one tool call per model turn)."""
    last = messages[-1]
    if isinstance(last, ToolMessage) and last.name == "search":
        return _tool_call("save", {"note": f"found: {last.content}"}, "call_save")
    if isinstance(last, ToolMessage) and last.name == "save":
        return AIMessage(f"Done. {last.content}")
    return _tool_call("search", {"query": str(last.content)}, "call_search")


def echo_script(messages: Sequence[BaseMessage]) -> AIMessage:
    return AIMessage(f"echo: {messages[-1].content}")


def _tool_call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])


class ScriptedChatModel(GenericFakeChatModel):
    messages: Iterator[AIMessage | str] = iter(())  # unused: answers come from `script`
    script: Callable[[Sequence[BaseMessage]], AIMessage] = research_script
    record: Record | None = None

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        answer = self._answer(messages)
        words = str(answer.content).split(" ") if answer.content else [""]
        for i, word in enumerate(words):
            last = i == len(words) - 1
            chunk = AIMessageChunk(
                content=word if i == 0 else " " + word,
                tool_call_chunks=[
                    {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": n}
                    for n, c in enumerate(answer.tool_calls)
                ]
                if last
                else [],
                usage_metadata=answer.usage_metadata if last else None,
                response_metadata=answer.response_metadata if last else {},
                chunk_position="last" if last else None,
            )
            yield ChatGenerationChunk(message=chunk)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        if self.record is not None:
            self.record("model")
        answer = self.script(messages)
        tokens = sum(len(str(m.content)) for m in messages)
        return answer.model_copy(
            update={
                "usage_metadata": {
                    "input_tokens": tokens,
                    "output_tokens": 7,
                    "total_tokens": tokens + 7,
                },
                "response_metadata": {"model_name": MODEL, "model_provider": "openai"},
            }
        )


def research_tools(record: Record | None = None) -> list[BaseTool]:
    """``search`` (reads) and ``save`` (writes a note somewhere)."""

    @tool
    def search(query: str) -> str:
        """Search the web."""
        if record is not None:
            record("search")
        return f"3 sources on {query!r}"

    @tool
    def save(note: str) -> str:
        """Save a note."""
        if record is not None:
            record("save")
        return f"saved {note!r}"

    return [search, save]


def run_agent_loop(model: Any, tools: Sequence[BaseTool], question: str) -> list[BaseMessage]:
    """model → tools → model …, the hand-written loop the example uses."""
    from langchain_core.messages import HumanMessage

    by_name = {t.name: t for t in tools}
    bound = model.bind_tools(tools)
    messages: list[BaseMessage] = [HumanMessage(question)]
    for _ in range(5):
        answer = bound.invoke(messages)
        messages.append(answer)
        if not answer.tool_calls:
            return messages
        messages.extend(by_name[call["name"]].invoke(call) for call in answer.tool_calls)
    raise AssertionError("the agent loop did not finish")


def stream_agent_loop(model: Any, tools: Sequence[BaseTool], question: str) -> list[BaseMessage]:
    """``run_agent_loop`` with each answer streamed (``stream()``) and merged."""
    from langchain_core.messages import HumanMessage, message_chunk_to_message

    by_name = {t.name: t for t in tools}
    bound = model.bind_tools(tools)
    messages: list[BaseMessage] = [HumanMessage(question)]
    for _ in range(5):
        chunks = list(bound.stream(messages))
        merged = chunks[0]
        for chunk in chunks[1:]:
            merged += chunk
        answer = message_chunk_to_message(merged)
        messages.append(answer)
        if not answer.tool_calls:
            return messages
        messages.extend(by_name[call["name"]].invoke(call) for call in answer.tool_calls)
    raise AssertionError("the agent loop did not finish")


async def arun_agent_loop(
    model: Any, tools: Sequence[BaseTool], question: str
) -> list[BaseMessage]:
    from langchain_core.messages import HumanMessage

    by_name = {t.name: t for t in tools}
    bound = model.bind_tools(tools)
    messages: list[BaseMessage] = [HumanMessage(question)]
    for _ in range(5):
        answer = await bound.ainvoke(messages)
        messages.append(answer)
        if not answer.tool_calls:
            return messages
        for call in answer.tool_calls:
            messages.append(await by_name[call["name"]].ainvoke(call))
    raise AssertionError("the agent loop did not finish")
