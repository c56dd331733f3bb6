"""A worker process for the LangChain crash tests.

    python -m tests.integrations.langchain.worker <run_id> <log_file>

Runs the research agent (model → search → model → save → model) as a workflow on the
database the TIDEBASE_* variables name, with ``tidebase_langchain`` installed. Every model
call and tool body appends "<what> <pid>" to the log file when it really executes.

- SCENARIO: "loop" (a hand-written tool loop over durable tools, default), "agent"
  (``create_agent`` with ``TidebaseMiddleware``) or "stream" (the loop with the model's sync
  ``stream()``; a stream that has more chunks to come logs "mid-stream" after its first);
- BLOCK_AT=<what>: print "IN <what>" when that body starts, then block until a line arrives
  on stdin (the test kills the process there).

Prints "RESULT <json>" or "ERROR <ExceptionType> <message>" (exit code 3).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import tidebase_langchain
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from tidebase import RunContext, Tidebase
from tidebase.errors import TidebaseError

from .scripted import ScriptedChatModel, research_tools, run_agent_loop, stream_agent_loop

LOG = sys.argv[2] if len(sys.argv) > 2 else os.devnull


def record(what: str) -> None:
    with open(LOG, "a") as f:
        f.write(f"{what} {os.getpid()}\n")
    if what == os.environ.get("BLOCK_AT"):
        print(f"IN {what}", flush=True)
        sys.stdin.readline()


def transcript(messages: list[BaseMessage]) -> list[Any]:
    """What an uncrashed run must equal: contents and tool call ids (message ids are random)."""
    return [
        [
            m.type,
            m.content,
            getattr(m, "tool_call_id", None),
            [c["id"] for c in getattr(m, "tool_calls", [])],
        ]
        for m in messages
    ]


def loop(run: RunContext, question: str) -> list[Any]:
    model = ScriptedChatModel(record=record)
    tools = tidebase_langchain.durable_tools(research_tools(record))
    return transcript(run_agent_loop(model, tools, question))


class MidStream(ScriptedChatModel):
    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        chunks = list(super()._stream(*args, **kwargs))
        for n, chunk in enumerate(chunks):
            yield chunk
            if n == 0 and len(chunks) > 1:
                record("mid-stream")


def stream(run: RunContext, question: str) -> list[Any]:
    model = MidStream(record=record)
    tools = tidebase_langchain.durable_tools(research_tools(record))
    return transcript(stream_agent_loop(model, tools, question))


def agent(run: RunContext, question: str) -> list[Any]:
    from langchain.agents import create_agent

    graph = create_agent(
        ScriptedChatModel(record=record),
        research_tools(record),
        middleware=[tidebase_langchain.TidebaseMiddleware()],
    )
    return transcript(
        graph.invoke({"messages": [{"role": "user", "content": question}]})["messages"]
    )


def main() -> int:
    tidebase_langchain.install()
    scenario = os.environ.get("SCENARIO", "loop")
    workflow = {"loop": loop, "agent": agent, "stream": stream}[scenario]
    with Tidebase() as tide:
        try:
            result = tide.run(scenario, workflow, run_id=sys.argv[1], input="tides")
        except TidebaseError as exc:
            print(f"ERROR {type(exc).__name__} {exc}", flush=True)
            return 3
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
