"""A real worker process for the plugin's crash tests.

    python -m tests.integrations.openai_agents.worker <run_id> <log_file>

Runs the support agents (triage -> refunds, see ``scripted.support_agents``) in an async
workflow on the database the TIDEBASE_* variables name. Every real model call appends
"<agent> <pid>" and every tool body "<tool> <pid>" to the log file, so a test counts real
executions independently of the database. Environment:

- STREAM=1: run the agents with ``run_agent_streamed`` and consume the stream;
- BLOCK_AT_MODEL=<n>: at the n-th real model call of this process, print "IN model <n>" and
  block until a line arrives on stdin (the test kills the process there);
- BLOCK_IN_STREAM=<word>: print "IN stream" and block when the model has streamed <word> (the
  model call is half streamed).

Prints "RESULT <json>" or "ERROR <ExceptionType> <message>" (exit code 3).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from agents import set_tracing_disabled
from tidebase_openai_agents import run_agent, run_agent_streamed

from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import TidebaseError

from .scripted import Shop, support_agents

LOG = sys.argv[2] if len(sys.argv) > 2 else os.devnull
BLOCK_AT_MODEL = int(os.environ.get("BLOCK_AT_MODEL", "0"))
BLOCK_IN_STREAM = os.environ.get("BLOCK_IN_STREAM")
model_calls = 0


def on_call(name: str) -> None:
    global model_calls
    with open(LOG, "a") as f:
        f.write(f"{name} {os.getpid()}\n")
    if name in ("triage", "refunds"):
        model_calls += 1
        if model_calls == BLOCK_AT_MODEL:
            block(f"model {model_calls}")


def on_delta(word: str) -> None:
    if word == BLOCK_IN_STREAM:
        block("stream")


def block(where: str) -> None:
    print(f"IN {where}", flush=True)
    sys.stdin.readline()


async def support(run: AsyncRunContext, input: str) -> Any:
    triage = support_agents(on_call, on_delta)
    if os.environ.get("STREAM") != "1":
        result = await run_agent(run, triage, input, context=Shop())
        return result.final_output
    streamed = run_agent_streamed(run, triage, input, context=Shop())
    async for _ in streamed.stream_events():
        pass
    return streamed.final_output


async def main() -> int:
    set_tracing_disabled(True)
    async with AsyncTidebase() as tide:
        try:
            result = await tide.run("support", support, run_id=sys.argv[1], input="Refund A1")
        except TidebaseError as exc:
            print(f"ERROR {type(exc).__name__} {exc}", flush=True)
            return 3
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
