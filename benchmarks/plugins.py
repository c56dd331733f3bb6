"""python -m benchmarks.plugins: what durability costs an agent, per model call and per tool call.

For each installed framework: one agent run of 21 model requests and 20 tool calls with a
scripted model (no network), plain (no Tidebase) and durable (inside a run, every operation
checkpointed), with no history and with a 200-message conversation before it. DESIGN §6 asks
≤ 1 ms per model call and ≤ 0.5 ms per tool call over the checkpoint write, flat in
conversation length. Per call of each kind (``Spans``: the framework's own entry point for a
model request and for a tool call, timed in both runs), durable minus plain:

- wall time less the time waiting on the database (every statement timed where it is sent);
- CPU time of this process (the database's own work is in another process);
- each net of the write (``write_in_place``): the plain agent again, inside a run, with a
  no-op ``run.step`` at the end of every call of each kind (its checkpoint write and the core's
  step bookkeeping, where the plugin's own write happens), minus the plain agent. What is left
  is the plugin's own overhead (hashing, pricing, usage rows, the result's round trip through
  JSON, the framework's durable path, statements of its own).

The write is measured in place because that is what it costs there: a statement's client side
(psycopg, the event loop, the core) runs between the framework's own code, with the processor's
caches full of it, and costs 3–4 × what the same ``run.step`` costs in a loop of nothing but
steps (``checkpoint_write``, still reported: 0.3 against 1.1 ms of CPU on this machine).

What the spans do not cover is reported per agent run: the workflow run's start and end, an
agent run's own hooks. Samples come in pairs, a durable one right after a plain one. The
machine here is shared and runs in phases of a few seconds in which the same pure-Python loop
takes up to 2 × as long; a pair counts only when that loop, timed just before and just after
it, ran within 10 % of the 10th percentile of the times seen (``QUIET``): up to ``REPEATS``
such pairs, out of at most four times as many tries. The overhead is the median of the quiet
pairs' differences (``--estimator min`` or ``median`` compare each side's own minimum or
median over all pairs instead; those swing by 2 × from run to run here). Then a resume in a
fresh process: the time of ``tide.run`` replaying all 41 operations, after the imports.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
TURNS = 20
"""Model responses that call tools; one more model request ends the agent run."""
REPEATS = 15
QUIET = 1.10
"""A pair is taken at full speed when the calibration loop around it is within this of its
fastest time."""
ESTIMATORS: dict[str, Callable[[list[float]], float]] = {"min": min, "median": statistics.median}
ESTIMATOR = "paired"
FLOOR_STEPS = 41


@dataclass(frozen=True)
class Shape:
    """An agent run: ``turns`` model responses each calling ``width`` tools, then a last one."""

    turns: int
    width: int

    @property
    def model_calls(self) -> int:
        return self.turns + 1

    @property
    def tool_calls(self) -> int:
        return self.turns * self.width


SERIAL = Shape(TURNS, 1)  # 21 model requests, 20 tool calls


# -- Pydantic AI ----------------------------------------------------------------------------


def pydantic_ai_agent(durable: bool, shape: Shape, capability: Any = None) -> Any:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import FunctionModel
    from pydantic_ai.usage import RequestUsage
    from tidebase_pydantic_ai import TidebaseDurability

    def respond(messages: list[Any], info: Any) -> ModelResponse:
        returns = sum(  # the tool results so far in this run (the history has none)
            getattr(part, "tool_name", None) == "lookup" and part.part_kind == "tool-return"
            for message in messages
            for part in message.parts
        )
        turn = returns // shape.width
        usage = RequestUsage(input_tokens=100 + turn, output_tokens=10)
        if turn < shape.turns:
            parts: list[Any] = [
                ToolCallPart("lookup", {"n": returns + i}, tool_call_id=f"call_{returns + i}")
                for i in range(shape.width)
            ]
            return ModelResponse(parts=parts, usage=usage, model_name="gpt-4o")
        return ModelResponse(parts=[TextPart("done")], usage=usage, model_name="gpt-4o")

    agent = Agent(
        FunctionModel(respond, model_name="gpt-4o"),
        name="bench",
        capabilities=[capability or TidebaseDurability()] if durable else [],
    )

    @agent.tool_plain
    def lookup(n: int) -> str:
        return f"result {n}"

    return agent


def pydantic_ai_framework_path(shape: Shape) -> Any:
    """The durable agent with a backend that only calls each operation's body: Pydantic AI's
    own durable-execution path (the durable model built per request, the result codec's dump
    and load, its wrappers), without anything of Tidebase's."""
    from pydantic_ai.durable_exec import RoleBasedOperationConfig
    from tidebase_pydantic_ai import TidebaseDurability
    from tidebase_pydantic_ai.backend import TidebaseOperationBackend

    class BodyOnly(TidebaseOperationBackend):
        async def execute(self, *, body: Callable[[], Awaitable[object]], **_: Any) -> object:
            return await body()

    class FrameworkPath(TidebaseDurability[Any]):
        def get_durable_operation_backend(self) -> TidebaseOperationBackend:
            none = RoleBasedOperationConfig(model=None, event=None, capability=None, tool=None)
            return BodyOnly(agent_name=self.name, default_model_id=None, config=none)

    return pydantic_ai_agent(True, shape, FrameworkPath())


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


def openai_agents_agent(durable: bool, shape: Shape) -> Any:
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
            returns = sum(
                isinstance(item, dict) and item.get("type") == "function_call_output"
                for item in (input if isinstance(input, list) else [])
            )
            turn = returns // shape.width
            usage = Usage(requests=1, input_tokens=100 + turn, output_tokens=10, total_tokens=110)
            if turn < shape.turns:
                calls = [
                    ResponseFunctionToolCall(
                        id=f"fc_{returns + i}",
                        call_id=f"call_{returns + i}",
                        type="function_call",
                        name="lookup",
                        arguments=json.dumps({"n": returns + i}),
                        status="completed",
                    )
                    for i in range(shape.width)
                ]
                return ModelResponse(output=calls, usage=usage, response_id=f"r{turn}")
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
    if durable:
        from tidebase_openai_agents import run_agent

        return agent, run_agent, shape
    from agents import Runner

    return agent, Runner.run, shape


def openai_agents_history(messages: int) -> list[Any]:
    history: list[Any] = []
    for i in range(messages // 2):
        history.append({"role": "user", "content": f"question {i} " + "words " * 40})
        history.append({"role": "assistant", "content": f"answer {i} " + "words " * 40})
    return history


async def openai_agents_once(agent: Any, history: list[Any]) -> None:
    bot, run, shape = agent  # ``run_agent`` durable, ``Runner.run`` plain
    prompt = [*history, {"role": "user", "content": "go"}]
    await run(bot, prompt, max_turns=shape.model_calls + 1)


# -- LangChain ---------------------------------------------------------------------------------


def langchain_agent(durable: bool, shape: Shape) -> Any:
    import tidebase_langchain
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool

    class Scripted(GenericFakeChatModel):
        def _generate(self, messages: list[BaseMessage], *args: Any, **kw: Any) -> ChatResult:
            returns = sum(m.type == "tool" for m in messages)
            turn = returns // shape.width
            usage = {"input_tokens": 100 + turn, "output_tokens": 10, "total_tokens": 110 + turn}
            if turn < shape.turns:
                calls = [
                    {"name": "lookup", "args": {"n": returns + i}, "id": f"call_{returns + i}"}
                    for i in range(shape.width)
                ]
                reply = AIMessage("", tool_calls=calls, usage_metadata=usage)  # type: ignore[arg-type]
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
    """The loop a LangChain agent runs: model, its tool calls, model again … until no call."""
    from langchain_core.messages import HumanMessage, ToolMessage

    model, lookup = agent
    messages = [*history, HumanMessage("go")]
    while True:
        async with SPANS.span("model"):
            reply = await model.ainvoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            return
        for call in reply.tool_calls:
            async with SPANS.span("tool"):
                result = await lookup.ainvoke({**call, "type": "tool_call"})
            messages.append(
                result
                if isinstance(result, ToolMessage)
                else ToolMessage(result, tool_call_id=call["id"])
            )


FRAMEWORKS: dict[str, tuple[str, Callable[[bool, Shape], Any], Callable[[int], list[Any]], Any]] = {
    "pydantic_ai": ("pydantic_ai", pydantic_ai_agent, pydantic_ai_history, pydantic_ai_once),
    "openai_agents": ("agents", openai_agents_agent, openai_agents_history, openai_agents_once),
    "langchain": ("langchain_core", langchain_agent, langchain_history, langchain_once),
}

FRAMEWORK_PATHS: dict[str, Callable[[Shape], Any]] = {"pydantic_ai": pydantic_ai_framework_path}
"""A framework's own durable-execution path without Tidebase, where it has one."""

# -- the measurements -----------------------------------------------------------------------


class DatabaseClock:
    """Wall time spent waiting on the database: every statement, timed where it is sent."""

    def __init__(self) -> None:
        from tidebase_core._async.store import AsyncStoreConnection

        self.seconds = 0.0
        self._cls = AsyncStoreConnection
        self._send = AsyncStoreConnection._send

    def __enter__(self) -> DatabaseClock:
        clock, execute = self, self._send

        async def timed(conn: Any, query: str, params: Any) -> Any:
            start = time.perf_counter()
            try:
                return await execute(conn, query, params)
            finally:
                clock.seconds += time.perf_counter() - start

        self._cls._send = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self._cls._send = self._send  # type: ignore[method-assign]


class Spans:
    """Time spent inside a framework's own model-call and tool-call entry points, by kind.

    The same entry points run with and without Tidebase (the framework's request-making
    function and its tool dispatcher), so a kind's durable sum minus its plain sum is the
    overhead of that kind of operation, whatever layer adds it; what the spans do not cover
    (the workflow run's start and end, an agent run's own hooks) is left to ``agent run``.
    Operations do not overlap here (one tool call per model response), so a span is one call.
    """

    KINDS = ("model", "tool")

    def __init__(self) -> None:
        self.clock: DatabaseClock | None = None
        self.write: Callable[[], Awaitable[Any]] | None = None
        """Set: awaited at the end of every counted call, inside its span (``write_in_place``)."""
        self.reset()

    def reset(self) -> None:
        self.sums = {kind: [0.0, 0.0, 0.0] for kind in self.KINDS}  # wall, cpu, db
        self.counts = dict.fromkeys(self.KINDS, 0)
        self._depth = dict.fromkeys(self.KINDS, 0)

    def _now(self) -> tuple[float, float, float]:
        return (
            time.perf_counter(),
            time.process_time(),
            self.clock.seconds if self.clock is not None else 0.0,
        )

    @contextlib.asynccontextmanager
    async def span(self, kind: str, *, counted: bool = True) -> Any:
        """``counted=False``: a part of a call timed in a span of its own (a tool's argument
        validation, before the call)."""
        self._depth[kind] += 1
        outermost = self._depth[kind] == 1
        start = self._now()
        try:
            yield
            if outermost and counted and self.write is not None:
                await self.write()
        finally:
            self._depth[kind] -= 1
            if outermost:
                end = self._now()
                sums = self.sums[kind]
                for i in range(3):
                    sums[i] += end[i] - start[i]
                self.counts[kind] += counted

    def wrap(self, owner: Any, name: str, kind: str, *, counted: bool = True) -> None:
        """Time ``owner.name`` (an async function or method) as a span of ``kind``."""
        original = getattr(owner, name)
        spans = self

        @functools.wraps(original)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            async with spans.span(kind, counted=counted):
                return await original(*args, **kwargs)

        setattr(owner, name, timed)


SPANS = Spans()


_instrumented: set[str] = set()


def _instrument(framework: str) -> None:
    """Spans around each framework's own entry points (see ``Spans``), once."""
    if framework in _instrumented:
        return
    _instrumented.add(framework)
    if framework == "pydantic_ai":
        from pydantic_ai import _agent_graph, _tool_execution, tool_manager

        SPANS.wrap(_agent_graph.ModelRequestNode, "_make_request", "model")
        SPANS.wrap(tool_manager.ToolManager, "validate_tool_call", "tool", counted=False)
        SPANS.wrap(_tool_execution._ToolCallProcessor, "_call_tool", "tool")
    elif framework == "openai_agents":
        from agents.run_internal import run_loop, tool_execution

        SPANS.wrap(run_loop, "get_new_response", "model")
        # The whole call: the run hooks around it (Tidebase logs tool.started / tool.ended).
        SPANS.wrap(tool_execution._FunctionToolBatchExecutor, "_run_single_tool", "tool")
    # LangChain: the benchmark's own loop makes the calls (``langchain_once``).


async def _timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): the CPU figure is what the library adds
    in-process whatever else the machine does; the wall figure includes the round trips."""
    start, cpu = time.perf_counter(), time.process_time()
    await fn()
    return time.perf_counter() - start, time.process_time() - cpu


@dataclass(frozen=True)
class Cost:
    """Durable minus plain, in ms: wall time less the database wait, and CPU time."""

    wall: float
    cpu: float

    def __sub__(self, other: Cost) -> Cost:
        return Cost(self.wall - other.wall, self.cpu - other.cpu)

    def __mul__(self, n: float) -> Cost:
        return Cost(self.wall * n, self.cpu * n)

    def __truediv__(self, n: float) -> Cost:
        return Cost(self.wall / n, self.cpu / n)


Sample = dict[str, tuple[float, float]]  # "total" / a kind → (wall less db, cpu) seconds


async def _sample(fn: Callable[[], Awaitable[Any]], clock: DatabaseClock | None) -> Sample:
    """One run of ``fn``: its totals, and per call of each kind (the mean of its spans)."""
    SPANS.reset()
    SPANS.clock = clock
    gc.collect()  # an earlier sample's garbage is not collected during this one
    before = clock.seconds if clock is not None else 0.0
    wall, cpu = await _timed(fn)
    sample = {"total": (wall - ((clock.seconds - before) if clock else 0.0), cpu)}
    for kind in Spans.KINDS:
        count = SPANS.counts[kind] or 1
        span_wall, span_cpu, span_db = SPANS.sums[kind]
        sample[kind] = ((span_wall - span_db) / count, span_cpu / count)
    SPANS.clock = None
    return sample


def _calibration() -> float:
    """Seconds of a fixed pure-Python loop (~2 ms): how fast the machine runs right now."""
    start = time.perf_counter()
    total = 0
    for i in range(20_000):
        total += i
    return time.perf_counter() - start


class _Speed:
    """The calibrations seen so far in this process, and how many pairs were quiet.

    Full speed is measured against the 10th percentile of the calibrations seen, not their
    minimum: one lucky loop would otherwise set a bar that almost nothing meets again (1 to 7
    of 1 200 pairs were "quiet" on this machine when it was the minimum)."""

    seen: ClassVar[list[float]] = []
    pairs: ClassVar[list[int]] = [0, 0]  # quiet, taken

    @classmethod
    def quiet(cls) -> bool:
        now = min(_calibration() for _ in range(3))
        bisect.insort(cls.seen, now)
        return now <= cls.seen[len(cls.seen) // 10] * QUIET


async def _overhead(
    plain: Callable[[], Awaitable[Any]], durable: Callable[[], Awaitable[Any]]
) -> dict[str, Cost]:
    """Durable minus plain, for the whole run and per call of each kind: the median of the
    differences of up to ``REPEATS`` pairs taken at full speed (after two to warm up); with
    ``--estimator min``/``median``, each side's minimum or median over every pair."""
    plains: list[Sample] = []
    durables: list[Sample] = []
    quiet: list[int] = []
    for repeat in range(4 * REPEATS + 2):
        before = _Speed.quiet()
        p = await _sample(plain, None)
        with DatabaseClock() as clock:
            d = await _sample(durable, clock)
        if repeat < 2:
            continue
        plains.append(p)
        durables.append(d)
        _Speed.pairs[1] += 1
        if before and _Speed.quiet():
            quiet.append(len(plains) - 1)
            _Speed.pairs[0] += 1
        if ESTIMATOR != "paired" and len(plains) == REPEATS:
            break
        if len(quiet) == REPEATS:
            break
    if ESTIMATOR == "paired":
        kept = quiet if len(quiet) >= 5 else range(len(plains))  # a machine never quiet: all
        return {
            what: Cost(
                *(
                    statistics.median(durables[k][what][i] - plains[k][what][i] for k in kept) * 1e3
                    for i in (0, 1)
                )
            )
            for what in ("total", *Spans.KINDS)
        }
    pick = ESTIMATORS[ESTIMATOR]
    return {
        what: Cost(
            (pick([s[what][0] for s in durables]) - pick([s[what][0] for s in plains])) * 1e3,
            (pick([s[what][1] for s in durables]) - pick([s[what][1] for s in plains])) * 1e3,
        )
        for what in ("total", *Spans.KINDS)
    }


async def checkpoint_write(tide: Any) -> Cost:
    """The floor: one ``run.step`` of a no-op (its checkpoint write and the core's step
    machinery, psycopg's client side included), from a run of ``FLOOR_STEPS`` of them against
    a run of none."""

    async def noop() -> int:
        return 1

    async def steps(count: int) -> None:
        async def workflow(run: Any, _: None) -> None:
            for _ in range(count):
                await run.step("noop", noop)

        await tide.run("floor", workflow, run_id=uuid.uuid4().hex)

    empty = await _overhead(lambda: steps(0), lambda: steps(0))
    full = await _overhead(lambda: steps(0), lambda: steps(FLOOR_STEPS))
    return (full["total"] - empty["total"]) / FLOOR_STEPS


async def write_in_place(tide: Any, plain: Callable[[], Awaitable[Any]]) -> dict[str, Cost]:
    """The checkpoint write where the plugin writes it: the plain agent with a no-op
    ``run.step`` of a run at the end of each call (``Spans.write``), minus the plain agent.
    The agent itself does not see the run (a plugin installed process-wide, as LangChain's
    is, would make its calls durable)."""
    from tidebase_core import context

    async def noop() -> int:
        return 1

    async def with_writes() -> None:
        async def workflow(run: Any, _: None) -> None:
            SPANS.write = lambda: run.step("write", noop)
            hidden = context._current.set(None)
            try:
                await plain()
            finally:
                context._current.reset(hidden)
                SPANS.write = None

        await tide.run("bench", workflow, run_id=uuid.uuid4().hex)

    return await _overhead(plain, with_writes)


async def measure(framework: str, url: str) -> dict[str, float]:
    """Per model call and per tool call (``Spans``), each also net of the write measured in
    place (``write_in_place``), per agent run (the rest), and the old figure: the whole
    overhead spread over the 41 operations."""
    from tidebase.aio import AsyncTidebase

    _, make_agent, make_history, once = FRAMEWORKS[framework]
    figures: dict[str, float] = {}
    _instrument(framework)
    plain_agent, durable_agent = make_agent(False, SERIAL), make_agent(True, SERIAL)
    async with AsyncTidebase(url, schema=f"bench_{uuid.uuid4().hex[:6]}") as tide:
        floor = await checkpoint_write(tide)
        figures["floor_wall_ms"], figures["floor_cpu_ms"] = floor.wall, floor.cpu
        for messages in (0, 200):
            history = make_history(messages)

            async def plain(history: list[Any] = history) -> None:
                await once(plain_agent, history)

            async def in_run(history: list[Any] = history) -> None:
                async def workflow(run: Any, _: None) -> None:
                    await once(durable_agent, history)

                await tide.run("bench", workflow, run_id=uuid.uuid4().hex)

            costs = await _overhead(plain, in_run)
            writes = await write_in_place(tide, plain)
            if framework in FRAMEWORK_PATHS:
                path_agent = FRAMEWORK_PATHS[framework](SERIAL)

                async def path(history: list[Any] = history, agent: Any = path_agent) -> None:
                    async def workflow(run: Any, _: None) -> None:
                        await once(agent, history)

                    await tide.run("bench", workflow, run_id=uuid.uuid4().hex)

                framework_path = await _overhead(plain, path)
                for kind in Spans.KINDS:
                    cost = framework_path[kind]
                    figures[f"{kind}_framework_wall_ms_{messages}"] = cost.wall
                    figures[f"{kind}_framework_cpu_ms_{messages}"] = cost.cpu
            model, tool = costs["model"], costs["tool"]
            rest = costs["total"] - model * SERIAL.model_calls - tool * SERIAL.tool_calls
            for name, cost in (
                ("model", model),
                ("model_write", writes["model"]),
                ("model_net", model - writes["model"]),
                ("tool", tool),
                ("tool_write", writes["tool"]),
                ("tool_net", tool - writes["tool"]),
                ("agent_run", rest),
                ("per_operation", costs["total"] / (SERIAL.model_calls + SERIAL.tool_calls)),
            ):
                figures[f"{name}_wall_ms_{messages}"] = cost.wall
                figures[f"{name}_cpu_ms_{messages}"] = cost.cpu
    return figures


RESUMES = 3


def resume_seconds(framework: str, url: str) -> tuple[float, float]:
    """A run whose 41 operations are checkpointed, replayed by a fresh process; and, for
    comparison, the same run's first execution in a fresh process (both after the imports:
    what the framework does once per process, such as the Agents SDK setting up its trace
    exporter, is in both). Medians of ``RESUMES`` runs."""
    firsts: list[float] = []
    resumes: list[float] = []
    for _ in range(RESUMES):
        schema = f"bench_{uuid.uuid4().hex[:6]}"
        run_id = uuid.uuid4().hex
        for times in (firsts, resumes):
            done = subprocess.run(
                [sys.executable, "-m", "benchmarks.plugins", "--resume-child", framework, url],
                cwd=ROOT,
                env={
                    # Compiled modules are kept, as an installed package has them (else a
                    # module imported lazily during the run is compiled during the timing).
                    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
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
            times.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(resumes), statistics.median(firsts)


async def _resume_child(framework: str, url: str) -> None:
    from tidebase.aio import AsyncTidebase

    _, make_agent, _, once = FRAMEWORKS[framework]
    agent = make_agent(True, SERIAL)
    start = 0.0

    async def workflow(run: Any, _: None) -> str:
        await once(agent, [])
        if run.attempt == 1:
            print(time.perf_counter() - start, flush=True)
            raise SystemExit(0)  # the first process ends after the agent finished
        return "resumed"

    async with AsyncTidebase(url, schema=os.environ["BENCH_SCHEMA"]) as tide:
        start = time.perf_counter()
        await tide.run("bench", workflow, run_id=os.environ["BENCH_RUN"])
        print(time.perf_counter() - start)


def table(results: dict[str, dict[str, float]]) -> str:
    """The figures as the README's table: ms, 0 / 200 messages of history."""

    def pair(figures: dict[str, float], name: str) -> str:
        return f"{figures[f'{name}_0']:.2f} / {figures[f'{name}_200']:.2f}"

    lines = [
        "| framework | per | wall over db | CPU | the write in place: wall | write: CPU "
        "| net of the write: wall | net: CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for framework, f in results.items():
        for what in ("model", "tool"):
            lines.append(
                f"| {framework} | {what} call | {pair(f, f'{what}_wall_ms')} | "
                f"{pair(f, f'{what}_cpu_ms')} | {pair(f, f'{what}_write_wall_ms')} | "
                f"{pair(f, f'{what}_write_cpu_ms')} | {pair(f, f'{what}_net_wall_ms')} | "
                f"{pair(f, f'{what}_net_cpu_ms')} |"
            )
        lines.append(
            f"| {framework} | agent run | {pair(f, 'agent_run_wall_ms')} | "
            f"{pair(f, 'agent_run_cpu_ms')} | | | | |"
        )
    for framework, f in results.items():
        lines.append(
            f"\n{framework}: one no-op run.step in a loop of them (checkpoint_write): wall over "
            f"db {f['floor_wall_ms']:.3f} ms, CPU {f['floor_cpu_ms']:.3f} ms"
        )
        if "model_framework_wall_ms_0" in f:
            lines.append(
                f"{framework}: of which the framework's own durable path (its backend only "
                "calling each body), wall over db / CPU, 0 / 200 messages: model call "
                f"{pair(f, 'model_framework_wall_ms')} / {pair(f, 'model_framework_cpu_ms')}, "
                f"tool call {pair(f, 'tool_framework_wall_ms')} / "
                f"{pair(f, 'tool_framework_cpu_ms')} ms"
            )
        if "resume_fresh_process_s" in f:
            lines.append(
                f"{framework}: resume in a fresh process {f['resume_fresh_process_s']:.3f} s "
                f"(its first execution in a fresh process: {f['first_run_fresh_process_s']:.3f} s)"
            )
    return "\n".join(lines)


def main() -> int:
    global ESTIMATOR
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plugins", description=__doc__)
    parser.add_argument("--url", help="a Postgres server URL (default: the embedded server)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat, report the medians")
    parser.add_argument(
        "--estimator",
        choices=["paired", *sorted(ESTIMATORS)],
        default=ESTIMATOR,
        help="of the samples",
    )
    parser.add_argument("--only", nargs="*", choices=sorted(FRAMEWORKS), help="these frameworks")
    parser.add_argument("--no-resume", action="store_true", help="skip the fresh-process resume")
    parser.add_argument("--resume-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    ESTIMATOR = args.estimator
    if args.resume_child:
        asyncio.run(_resume_child(*args.resume_child))
        return 0
    from .databases import embedded_server

    url = args.url or embedded_server()
    results: dict[str, dict[str, float]] = {}
    load = os.getloadavg()
    for framework, (module, *_) in FRAMEWORKS.items():
        if args.only and framework not in args.only:
            continue
        try:
            __import__(module)
        except ImportError:
            continue
        rounds = [asyncio.run(measure(framework, url)) for _ in range(args.rounds)]
        figures = {name: statistics.median(r[name] for r in rounds) for name in rounds[0]}
        if not args.no_resume:
            resume, first = resume_seconds(framework, url)
            figures["resume_fresh_process_s"], figures["first_run_fresh_process_s"] = resume, first
        results[framework] = figures
        print(framework, json.dumps({k: round(v, 3) for k, v in figures.items()}), flush=True)
    print(table(results))
    print("load average before / after:", load, os.getloadavg())
    print("pairs taken at full speed: {} of {}".format(*_Speed.pairs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
