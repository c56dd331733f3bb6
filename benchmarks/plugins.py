"""python -m benchmarks.plugins: what durability costs an agent, per framework operation.

For each installed framework: one agent run of 21 model requests and 20 tool calls with a
scripted model (no network), plain (no Tidebase) and durable (inside a run, every operation
checkpointed), with no history and with a 200-message conversation before it. The overhead per
operation is what Tidebase adds over its database round trips (DESIGN §6: ≤ 1 ms per model
call, ≤ 0.5 ms per tool call over the checkpoint write, flat in conversation length):
``(durable - plain - time waiting on the database) / operations`` in wall time, every statement
timed where it is sent; and ``(durable - plain) / operations`` in CPU time of this process,
which no other load on the machine moves (the database's own work is in another process).
Then a resume in a fresh process: the time of ``tide.run`` replaying all 41 operations, after
the imports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOOL_CALLS = 20
MODEL_CALLS = TOOL_CALLS + 1
REPEATS = 7


# -- Pydantic AI ----------------------------------------------------------------------------


def pydantic_ai_agent(durable: bool) -> Any:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import FunctionModel
    from pydantic_ai.usage import RequestUsage
    from tidebase_pydantic_ai import TidebaseDurability

    def respond(messages: list[Any], info: Any) -> ModelResponse:
        turn = sum(  # the tool results so far in this run (the history has none)
            getattr(part, "tool_name", None) == "lookup" and part.part_kind == "tool-return"
            for message in messages
            for part in message.parts
        )
        usage = RequestUsage(input_tokens=100 + turn, output_tokens=10)
        if turn < TOOL_CALLS:
            part = ToolCallPart("lookup", {"n": turn}, tool_call_id=f"call_{turn}")
            return ModelResponse(parts=[part], usage=usage, model_name="gpt-4o")
        return ModelResponse(parts=[TextPart("done")], usage=usage, model_name="gpt-4o")

    agent = Agent(
        FunctionModel(respond, model_name="gpt-4o"),
        name="bench",
        capabilities=[TidebaseDurability()] if durable else [],
    )

    @agent.tool_plain
    def lookup(n: int) -> str:
        return f"result {n}"

    return agent


def pydantic_ai_history(messages: int) -> list[Any]:
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart

    history: list[Any] = []
    for i in range(messages // 2):
        history.append(ModelRequest(parts=[UserPromptPart(f"question {i} " + "words " * 40)]))
        history.append(ModelResponse(parts=[TextPart(f"answer {i} " + "words " * 40)]))
    return history


async def pydantic_ai_once(agent: Any, history: list[Any]) -> None:
    await agent.run("go", message_history=history)


# -- OpenAI Agents SDK -------------------------------------------------------------------------


def openai_agents_agent(durable: bool) -> Any:
    import json

    from agents import Agent, Model, ModelResponse, Usage, function_tool
    from openai.types.responses import (
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputText,
    )

    class ScriptedModel(Model):
        async def get_response(
            self, system_instructions: Any, input: Any, *args: Any, **kw: Any
        ) -> Any:
            turn = sum(
                isinstance(item, dict) and item.get("type") == "function_call_output"
                for item in (input if isinstance(input, list) else [])
            )
            usage = Usage(requests=1, input_tokens=100 + turn, output_tokens=10, total_tokens=110)
            if turn < TOOL_CALLS:
                call = ResponseFunctionToolCall(
                    id=f"fc_{turn}",
                    call_id=f"call_{turn}",
                    type="function_call",
                    name="lookup",
                    arguments=json.dumps({"n": turn}),
                    status="completed",
                )
                return ModelResponse(output=[call], usage=usage, response_id=f"r{turn}")
            text = ResponseOutputText(type="output_text", text="done", annotations=[], logprobs=[])
            message = ResponseOutputMessage(
                id="m", type="message", role="assistant", status="completed", content=[text]
            )
            return ModelResponse(output=[message], usage=usage, response_id="r_last")

        async def stream_response(self, *args: Any, **kw: Any) -> Any:  # pragma: no cover
            raise NotImplementedError

    @function_tool
    def lookup(n: int) -> str:
        return f"result {n}"

    agent = Agent(name="bench", model=ScriptedModel(), tools=[lookup])
    return agent, durable


def openai_agents_history(messages: int) -> list[Any]:
    history: list[Any] = []
    for i in range(messages // 2):
        history.append({"role": "user", "content": f"question {i} " + "words " * 40})
        history.append({"role": "assistant", "content": f"answer {i} " + "words " * 40})
    return history


async def openai_agents_once(agent: Any, history: list[Any]) -> None:
    from agents import Runner
    from tidebase_openai_agents import run_agent

    bot, durable = agent
    prompt = [*history, {"role": "user", "content": "go"}]
    if durable:
        await run_agent(bot, prompt, max_turns=MODEL_CALLS + 1)
    else:
        await Runner.run(bot, prompt, max_turns=MODEL_CALLS + 1)


# -- LangChain ---------------------------------------------------------------------------------


def langchain_agent(durable: bool) -> Any:
    import tidebase_langchain
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool

    class Scripted(GenericFakeChatModel):
        def _generate(self, messages: list[BaseMessage], *args: Any, **kw: Any) -> ChatResult:
            turn = sum(m.type == "tool" for m in messages)
            usage = {"input_tokens": 100 + turn, "output_tokens": 10, "total_tokens": 110 + turn}
            if turn < TOOL_CALLS:
                call = {"name": "lookup", "args": {"n": turn}, "id": f"call_{turn}"}
                reply = AIMessage("", tool_calls=[call], usage_metadata=usage)  # type: ignore[arg-type]
            else:
                reply = AIMessage("done", usage_metadata=usage)  # type: ignore[arg-type]
            return ChatResult(generations=[ChatGeneration(message=reply)])

    @tool
    def lookup(n: int) -> str:
        """Look n up."""
        return f"result {n}"

    if durable:
        tidebase_langchain.install()
        lookup = tidebase_langchain.durable_tool(lookup)
    return Scripted(messages=iter(())), lookup


def langchain_history(messages: int) -> list[Any]:
    from langchain_core.messages import AIMessage, HumanMessage

    history: list[Any] = []
    for i in range(messages // 2):
        history.append(HumanMessage(f"question {i} " + "words " * 40))
        history.append(AIMessage(f"answer {i} " + "words " * 40))
    return history


async def langchain_once(agent: Any, history: list[Any]) -> None:
    """The loop a LangChain agent runs: model, its tool call, model again … 21 model calls."""
    from langchain_core.messages import HumanMessage, ToolMessage

    model, lookup = agent
    messages = [*history, HumanMessage("go")]
    while True:
        reply = await model.ainvoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            return
        call = reply.tool_calls[0]
        result = await lookup.ainvoke({**call, "type": "tool_call"})
        messages.append(
            result
            if isinstance(result, ToolMessage)
            else ToolMessage(result, tool_call_id=call["id"])
        )


FRAMEWORKS: dict[str, tuple[str, Callable[[bool], Any], Callable[[int], list[Any]], Any]] = {
    "pydantic_ai": ("pydantic_ai", pydantic_ai_agent, pydantic_ai_history, pydantic_ai_once),
    "openai_agents": ("agents", openai_agents_agent, openai_agents_history, openai_agents_once),
    "langchain": ("langchain_core", langchain_agent, langchain_history, langchain_once),
}

# -- the measurements -----------------------------------------------------------------------


class DatabaseClock:
    """Wall time spent waiting on the database: every statement, timed where it is sent."""

    def __init__(self) -> None:
        from tidebase_core._async.store import AsyncStoreConnection

        self.seconds = 0.0
        self._cls = AsyncStoreConnection
        self._execute = AsyncStoreConnection._execute

    def __enter__(self) -> DatabaseClock:
        clock, execute = self, self._execute

        async def timed(conn: Any, query: str, params: Any) -> Any:
            start = time.perf_counter()
            try:
                return await execute(conn, query, params)
            finally:
                clock.seconds += time.perf_counter() - start

        self._cls._execute = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self._cls._execute = self._execute  # type: ignore[method-assign]


async def _timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): the CPU figure is what the library adds
    in-process whatever else the machine does; the wall figure includes the round trips."""
    start, cpu = time.perf_counter(), time.process_time()
    await fn()
    return time.perf_counter() - start, time.process_time() - cpu


async def measure(framework: str, url: str) -> dict[str, float]:
    from tidebase.aio import AsyncTidebase

    _, make_agent, make_history, once = FRAMEWORKS[framework]
    plain_agent, durable_agent = make_agent(False), make_agent(True)
    figures: dict[str, float] = {}
    async with AsyncTidebase(url, schema=f"bench_{uuid.uuid4().hex[:6]}") as tide:
        for messages in (0, 200):
            history = make_history(messages)
            plain: list[tuple[float, float]] = []
            durable: list[tuple[float, float, float]] = []

            async def in_run(history: list[Any] = history) -> None:
                async def workflow(run: Any, _: None) -> None:
                    await once(durable_agent, history)

                await tide.run("bench", workflow, run_id=uuid.uuid4().hex)

            for repeat in range(REPEATS + 2):  # the first two warm up
                p = await _timed(lambda history=history: once(plain_agent, history))
                with DatabaseClock() as clock:
                    d = await _timed(in_run)
                if repeat >= 2:
                    plain.append(p)
                    durable.append((*d, clock.seconds))
            operations = MODEL_CALLS + TOOL_CALLS
            wall = [
                statistics.median(t[0] for t in plain),
                statistics.median(t[0] for t in durable),
            ]
            cpu = [statistics.median(t[1] for t in plain), statistics.median(t[1] for t in durable)]
            database = statistics.median(t[2] for t in durable)
            figures[f"plain_ms_{messages}"] = wall[0] * 1e3
            figures[f"durable_ms_{messages}"] = wall[1] * 1e3
            figures[f"database_ms_{messages}"] = database * 1e3
            figures[f"wall_overhead_per_operation_ms_{messages}"] = (
                (wall[1] - wall[0] - database) / operations * 1e3
            )
            figures[f"cpu_overhead_per_operation_ms_{messages}"] = (
                (cpu[1] - cpu[0]) / operations * 1e3
            )
    return figures


def resume_seconds(framework: str, url: str) -> float:
    """A run whose 41 operations are checkpointed, replayed by a fresh process."""
    schema = f"bench_{uuid.uuid4().hex[:6]}"
    run_id = uuid.uuid4().hex
    for _attempt in (1, 2):
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.plugins", "--resume-child", framework, url],
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "BENCH_SCHEMA": schema,
                "BENCH_RUN": run_id,
            },
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(done.stderr)
    return float(done.stdout.strip().splitlines()[-1])


async def _resume_child(framework: str, url: str) -> None:
    from tidebase.aio import AsyncTidebase

    _, make_agent, _, once = FRAMEWORKS[framework]
    agent = make_agent(True)

    async def workflow(run: Any, _: None) -> str:
        await once(agent, [])
        if run.attempt == 1:
            raise SystemExit(0)  # the first process ends after the agent finished
        return "resumed"

    async with AsyncTidebase(url, schema=os.environ["BENCH_SCHEMA"]) as tide:
        start = time.perf_counter()
        await tide.run("bench", workflow, run_id=os.environ["BENCH_RUN"])
        print(time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plugins", description=__doc__)
    parser.add_argument("--url", help="a Postgres server URL (default: the embedded server)")
    parser.add_argument("--resume-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.resume_child:
        asyncio.run(_resume_child(*args.resume_child))
        return 0
    from .__main__ import _embedded

    url = args.url or _embedded()
    results: dict[str, dict[str, float]] = {}
    for framework, (module, *_) in FRAMEWORKS.items():
        try:
            __import__(module)
        except ImportError:
            continue
        figures = asyncio.run(measure(framework, url))
        figures["resume_fresh_process_s"] = resume_seconds(framework, url)
        results[framework] = figures
        print(framework, json.dumps({k: round(v, 3) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
