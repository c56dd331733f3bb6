"""A LangChain research agent that survives a crash: model → tools → model, checkpointed.

    python examples/langchain_research.py [run id]

The agent searches, saves a note (a side effect: a file), and answers. It runs offline with a
scripted chat model; with OPENAI_API_KEY set (and `pip install langchain-openai`) it uses
ChatOpenAI instead. Kill it anywhere (FAIL_AT=save_note kills it with SIGKILL inside the save
tool, FAIL_AT=search inside the search) and run it again with the same run id: the model
calls and tool calls that completed replay from Postgres, the rest runs once, and the usage
ledger holds each real model call once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import tidebase_langchain
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool

import tidebase

tidebase_langchain.install()  # model calls in a run now replay from their checkpoints

NOTES = Path(os.environ.get("NOTES_DIR", ".tidebase/notes"))


def fail_here(name: str) -> None:
    if os.environ.get("FAIL_AT") == name:
        print(f"  FAIL_AT={name}: killing this process with SIGKILL", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


@tool
def search(query: str) -> str:
    """Search the web for a query; returns the top findings."""
    print(f"  executing search({query!r})")
    fail_here("search")
    return f"Tides follow the Moon's gravity; two highs a day; spring tides at full moon ({query})."


@tool
def save_note(title: str, text: str) -> str:
    """Save a research note."""
    print(f"  executing save_note({title!r})")
    fail_here("save_note")
    NOTES.mkdir(parents=True, exist_ok=True)
    path = NOTES / f"{title}.md"
    path.write_text(text)  # same title, same text: running it twice writes the same file
    return f"saved {path}"


TOOLS = tidebase_langchain.durable_tools(
    [search, save_note],
    side_effects={"save_note": ["filesystem"]},
    idempotency_key={"save_note": lambda args, call_id: f"note-{args['title']}"},
)


class OfflineModel(GenericFakeChatModel):
    """A stand-in for an LLM: answers from the conversation, reports usage like OpenAI."""

    messages: Iterator[AIMessage | str] = iter(())

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        last = messages[-1]
        print(f"  executing model call ({len(messages)} messages in)")
        if isinstance(last, HumanMessage):
            reply = _call("search", {"query": str(last.content)})
        elif isinstance(last, ToolMessage) and last.name == "search":
            reply = _call("save_note", {"title": "tides", "text": str(last.content)})
        else:
            reply = AIMessage("Tides are the Moon's doing: two highs a day. Notes saved.")
        tokens = sum(len(str(m.content).split()) for m in messages) * 4
        reply.usage_metadata = {
            "input_tokens": tokens,
            "output_tokens": 20,
            "total_tokens": tokens + 20,
        }
        reply.response_metadata = {"model_name": "gpt-4o-mini", "model_provider": "openai"}
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def _call(name: str, args: dict[str, str]) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": f"call_{name}"}])


def make_model() -> BaseChatModel:
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI  # optional: pip install langchain-openai

        return ChatOpenAI(model="gpt-4o-mini", temperature=0)
    return OfflineModel()


@tidebase.workflow
def research(topic: str) -> str:
    by_name = {t.name: t for t in TOOLS}
    model = make_model().bind_tools(TOOLS)
    messages: list[BaseMessage] = [
        SystemMessage("Research with `search`, save a note with `save_note`, then answer."),
        HumanMessage(topic),
    ]
    for _ in range(8):
        reply = model.invoke(messages)  # replayed on resume, checkpointed with its usage
        messages.append(reply)
        if not reply.tool_calls:
            return str(reply.content)
        for call in reply.tool_calls:
            messages.append(by_name[call["name"]].invoke(call))  # a step: runs once
    return "gave up after 8 turns"


def main() -> None:
    run_id = sys.argv[1] if len(sys.argv) > 1 else f"research-{uuid.uuid4().hex[:8]}"
    print(f"run {run_id}   (resume with: python examples/langchain_research.py {run_id})")
    answer = research.run("tides", run_id=run_id)
    with tidebase.Tidebase() as tide:
        usage = tide.usage.summary(run_id)
    print(f"answer: {answer}")
    print(
        "usage:  "
        + json.dumps({"model calls": usage.calls, "tokens": usage.total_tokens})
        + f"  ${usage.cost_usd:.6f}"
    )


if __name__ == "__main__":
    main()
