"""One contract for every plugin (DESIGN §4b), run against each framework's real classes.

Each plugin drives the same scripted conversation: the model asks for two ``lookup`` calls in
one response (parallel), then for ``file``, then answers with what the tools returned. The test
owns the model's and the tools' behaviour through ``Hooks``: it counts executions, makes the
process "die" at any operation (a ``BaseException`` that no layer records, as a SIGKILL leaves
no record; each plugin's own suite also kills real processes), cancels, or answers a 503.

The contract: resuming after a death at any model or tool call executes nothing that completed
and reaches the same answer; a changed prompt raises ``InputMismatch`` before the model is
asked; each real model call is in the ledger once; a cancel stops the run before the next
model call; a failed model call replays as the same exception, so a fallback replays too; the
tool calls of one response run concurrently and each replays its own result.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest

from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import InputMismatch, RunCancelled


class Die(BaseException):
    """The process ending mid-operation: nothing catches or records it."""


class Crash(Exception):
    """The workflow failing after the agent finished (its work stays checkpointed)."""


@dataclass
class Hooks:
    """What the scripted model and tools do, decided by the test."""

    ran: Counter[str] = field(default_factory=Counter)
    die_at: str | None = None  # an operation name: "model0", "lookup:a", "file" …
    cancel_at: str | None = None
    unavailable: bool = False  # the model answers 503
    in_flight: list[int] = field(default_factory=lambda: [0, 0])  # tools now, most at once
    atide: AsyncTidebase | None = None
    run_id: str = ""

    async def operation(self, name: str) -> None:
        """Called at the end of each operation's real work, before it counts as done."""
        if name == self.die_at:
            self.die_at = None
            raise Die(name)
        if name == self.cancel_at and self.atide is not None:
            await self.atide.runs.cancel(self.run_id, reason="stop")
        self.ran[name] += 1

    async def model(self, turn: int) -> None:
        await self.operation(f"model{turn}")

    async def tool(self, name: str, arg: str) -> str:
        self.in_flight[0] += 1
        self.in_flight[1] = max(self.in_flight)
        try:
            # ``lookup:b`` takes longer: a death in it comes after ``lookup:a`` was saved.
            await asyncio.sleep(0.05 if arg == "b" else 0.01)
            await self.operation(f"{name}:{arg}")
        finally:
            self.in_flight[0] -= 1
        return f"{name}({arg}) ok"


ANSWER = "lookup(a) ok | lookup(b) ok | file(report) ok"
OPERATIONS = ["model0", "lookup:a", "lookup:b", "model1", "file:report", "model2"]


class Plugin(Protocol):
    name: str
    provider_error: type[BaseException]

    async def ask(self, run: AsyncRunContext, hooks: Hooks, prompt: str, agent: str) -> str:
        """Run the scripted agent named ``agent`` on ``prompt`` inside ``run``."""
        ...


# -- the plugins ------------------------------------------------------------------------------


def _turn_of(tool_results: int) -> int:
    return {0: 0, 2: 1, 3: 2}[tool_results]


class PydanticAI:
    name = "pydantic_ai"

    def __init__(self) -> None:
        from pydantic_ai.exceptions import ModelHTTPError

        self.provider_error = ModelHTTPError

    async def ask(self, run: AsyncRunContext, hooks: Hooks, prompt: str, agent: str) -> str:
        from pydantic_ai import Agent
        from pydantic_ai.exceptions import ModelHTTPError
        from pydantic_ai.messages import ModelResponse, TextPart, ToolCallPart, ToolReturnPart
        from pydantic_ai.models.function import AgentInfo, FunctionModel
        from pydantic_ai.usage import RequestUsage
        from tidebase_pydantic_ai import TidebaseDurability

        async def respond(messages: list[Any], info: AgentInfo) -> ModelResponse:
            returns = [
                str(p.content) for m in messages for p in m.parts if isinstance(p, ToolReturnPart)
            ]
            turn = _turn_of(len(returns))
            if hooks.unavailable:
                hooks.ran[f"{agent}:503"] += 1
                raise ModelHTTPError(503, "scripted", body={"error": "overloaded"})
            await hooks.model(turn)
            usage = RequestUsage(input_tokens=100 + turn, output_tokens=10 + turn)
            if turn == 0:
                calls = [ToolCallPart("lookup", {"arg": x}, tool_call_id=f"c_{x}") for x in "ab"]
                return ModelResponse(parts=calls, usage=usage, model_name="gpt-4o")
            if turn == 1:
                call = ToolCallPart("file", {"arg": "report"}, tool_call_id="c_f")
                return ModelResponse(parts=[call], usage=usage, model_name="gpt-4o")
            return ModelResponse(parts=[TextPart(" | ".join(returns))], usage=usage)

        model = FunctionModel(respond, model_name="gpt-4o")
        bot = Agent(model, name=agent, capabilities=[TidebaseDurability()])

        @bot.tool_plain
        async def lookup(arg: str) -> str:
            return await hooks.tool("lookup", arg)

        @bot.tool_plain
        async def file(arg: str) -> str:
            return await hooks.tool("file", arg)

        return (await bot.run(prompt)).output


class OpenAIAgents:
    name = "openai_agents"

    def __init__(self) -> None:
        import openai

        self.provider_error = openai.InternalServerError

    async def ask(self, run: AsyncRunContext, hooks: Hooks, prompt: str, agent: str) -> str:
        import json

        from agents import Agent, Model, ModelResponse, Usage, function_tool
        from openai.types.responses import (
            ResponseFunctionToolCall,
            ResponseOutputMessage,
            ResponseOutputText,
        )
        from tidebase_openai_agents import run_agent

        from .openai_agents.scripted import unavailable

        def tool_call(name: str, arg: str, call_id: str) -> ResponseFunctionToolCall:
            return ResponseFunctionToolCall(
                id=f"fc_{call_id}",
                call_id=call_id,
                type="function_call",
                name=name,
                arguments=json.dumps({"arg": arg}),
                status="completed",
            )

        class ScriptedModel(Model):
            async def get_response(
                self, system_instructions: Any, input: Any, *args: Any, **kw: Any
            ) -> Any:
                outputs = [
                    item["output"]
                    for item in (input if isinstance(input, list) else [])
                    if isinstance(item, dict) and item.get("type") == "function_call_output"
                ]
                turn = _turn_of(len(outputs))
                if hooks.unavailable:
                    hooks.ran[f"{agent}:503"] += 1
                    raise unavailable("overloaded")
                await hooks.model(turn)
                if turn == 0:
                    output: list[Any] = [tool_call("lookup", x, f"c_{x}") for x in "ab"]
                elif turn == 1:
                    output = [tool_call("file", "report", "c_f")]
                else:
                    text = ResponseOutputText(
                        type="output_text", text=" | ".join(outputs), annotations=[], logprobs=[]
                    )
                    output = [
                        ResponseOutputMessage(
                            id="msg",
                            type="message",
                            role="assistant",
                            status="completed",
                            content=[text],
                        )
                    ]
                usage = Usage(
                    requests=1,
                    input_tokens=100 + turn,
                    output_tokens=10 + turn,
                    total_tokens=110 + 2 * turn,
                )
                return ModelResponse(output=output, usage=usage, response_id=f"r{turn}")

            async def stream_response(self, *args: Any, **kw: Any) -> Any:  # pragma: no cover
                raise NotImplementedError

        @function_tool
        async def lookup(arg: str) -> str:
            return await hooks.tool("lookup", arg)

        @function_tool
        async def file(arg: str) -> str:
            return await hooks.tool("file", arg)

        bot = Agent(name=agent, model=ScriptedModel(), tools=[lookup, file])
        return str((await run_agent(run, bot, prompt)).final_output)


def _available() -> list[Any]:
    plugins: list[Any] = []
    if importlib.util.find_spec("pydantic_ai") and importlib.util.find_spec("tidebase_pydantic_ai"):
        plugins.append(pytest.param(PydanticAI, id="pydantic_ai"))
    if importlib.util.find_spec("agents") and importlib.util.find_spec("tidebase_openai_agents"):
        plugins.append(pytest.param(OpenAIAgents, id="openai_agents"))
    return plugins


@pytest.fixture(params=_available())
def plugin(request: pytest.FixtureRequest) -> Plugin:
    made: Plugin = request.param()
    return made


async def _run(
    atide: AsyncTidebase, run_id: str, body: Callable[[AsyncRunContext], Awaitable[str]]
) -> str:
    async def workflow(run: AsyncRunContext, input: None) -> str:
        return await body(run)

    return await atide.run("contract", workflow, run_id=run_id)


# -- the contract -----------------------------------------------------------------------------


@pytest.mark.parametrize("die_at", OPERATIONS)
async def test_a_death_at_any_operation_resumes_without_repeating_completed_work(
    atide: AsyncTidebase, plugin: Plugin, die_at: str
) -> None:
    hooks = Hooks(die_at=die_at)
    run_id = f"{plugin.name}-die-{die_at}"
    with pytest.raises(Die):
        await _run(atide, run_id, lambda run: plugin.ask(run, hooks, "go", "contract"))
    assert await _run(atide, run_id, lambda run: plugin.ask(run, hooks, "go", "contract")) == (
        ANSWER
    )
    assert hooks.ran == dict.fromkeys(OPERATIONS, 1), "completed work executed again"
    rows = await atide.usage.records(run_id)
    assert sorted(r.input_tokens for r in rows) == [100, 101, 102], "one row per real model call"


async def test_a_changed_prompt_raises_input_mismatch_before_the_model_is_asked(
    atide: AsyncTidebase, plugin: Plugin
) -> None:
    hooks = Hooks()
    run_id = f"{plugin.name}-drift"

    async def crashing(run: AsyncRunContext, prompt: str) -> str:
        answer = await plugin.ask(run, hooks, prompt, "contract")
        raise Crash(answer)

    with pytest.raises(Crash):
        await _run(atide, run_id, lambda run: crashing(run, "go"))
    with pytest.raises(InputMismatch):
        await _run(atide, run_id, lambda run: crashing(run, "go somewhere else"))
    assert hooks.ran["model0"] == 1


async def test_a_cancel_stops_the_run_before_the_next_model_call(
    atide: AsyncTidebase, plugin: Plugin
) -> None:
    run_id = f"{plugin.name}-cancel"
    hooks = Hooks(cancel_at="file:report", atide=atide, run_id=run_id)
    with pytest.raises(RunCancelled):
        await _run(atide, run_id, lambda run: plugin.ask(run, hooks, "go", "contract"))
    assert hooks.ran["model2"] == 0, "a model call was paid for after the cancel"
    assert (await atide.runs.get(run_id)).status == "cancelled"


async def test_a_failed_model_call_replays_as_the_same_error_and_the_fallback_with_it(
    atide: AsyncTidebase, plugin: Plugin
) -> None:
    hooks = Hooks()
    caught: list[type[BaseException]] = []
    run_id = f"{plugin.name}-fallback"

    async def with_fallback(run: AsyncRunContext) -> str:
        hooks.unavailable = True
        try:
            answer = await plugin.ask(run, hooks, "go", "primary")
        except plugin.provider_error as exc:
            caught.append(type(exc))
            hooks.unavailable = False
            answer = await plugin.ask(run, hooks, "go", "backup")
        if run.attempt == 1:
            raise Crash(answer)
        return answer

    with pytest.raises(Crash):
        await _run(atide, run_id, with_fallback)
    assert await _run(atide, run_id, with_fallback) == ANSWER
    assert hooks.ran["primary:503"] == 1, "the failed call was sent again"
    assert caught == [caught[0]] * 2 and issubclass(caught[0], plugin.provider_error)
    assert hooks.ran == {"primary:503": 1, **dict.fromkeys(OPERATIONS, 1)}


async def test_tool_calls_of_one_response_run_together_and_replay_their_own_results(
    atide: AsyncTidebase, plugin: Plugin
) -> None:
    hooks = Hooks()
    run_id = f"{plugin.name}-parallel"

    async def crashing(run: AsyncRunContext) -> str:
        answer = await plugin.ask(run, hooks, "go", "contract")
        if run.attempt == 1:
            raise Crash(answer)
        return answer

    with pytest.raises(Crash):
        await _run(atide, run_id, crashing)
    assert hooks.in_flight[1] == 2, "the two lookups of one response must overlap"
    assert await _run(atide, run_id, crashing) == ANSWER
    outputs = {
        s.name.rsplit(".", 1)[-1]: s.output
        for s in await atide.runs.steps(run_id)
        if ".c_a" in s.name or ".c_b" in s.name
    }
    assert sorted(outputs) == ["c_a", "c_b"]
    assert "lookup(a) ok" in str(outputs["c_a"]) and "lookup(b) ok" in str(outputs["c_b"])


async def test_usage_by_agent_matches_the_real_calls_of_each_agent(
    atide: AsyncTidebase, plugin: Plugin
) -> None:
    hooks = Hooks()
    run_id = f"{plugin.name}-by-agent"

    async def two_agents(run: AsyncRunContext) -> str:
        await plugin.ask(run, hooks, "go", "researcher")
        return await plugin.ask(run, hooks, "go", "writer")

    assert await _run(atide, run_id, two_agents) == ANSWER
    summary = await atide.usage.summary(run_id)
    by_agent = {a.agent: (a.calls, a.input_tokens, a.output_tokens) for a in summary.by_agent}
    # Three real model calls each, with input tokens 100, 101, 102 and output 10, 11, 12.
    assert by_agent == {"researcher": (3, 303, 33), "writer": (3, 303, 33)}


async def test_a_budget_stops_the_agent_within_one_model_call_of_its_cap(
    atide: AsyncTidebase, plugin: Plugin
) -> None:
    from tidebase import Budget
    from tidebase.errors import BudgetExceeded

    hooks = Hooks()
    run_id = f"{plugin.name}-budget"

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return await plugin.ask(run, hooks, "go", "contract")

    # 110 tokens for the first call, 112 for the second: the cap of 150 is passed by the
    # second call, and the third is refused before it is sent.
    with pytest.raises(BudgetExceeded):
        await atide.run("contract", workflow, run_id=run_id, budget=Budget(tokens=150))
    assert (hooks.ran["model0"], hooks.ran["model1"], hooks.ran["model2"]) == (1, 1, 0)
    assert (await atide.usage.summary(run_id)).total_tokens == 222
    run = await atide.runs.get(run_id)
    assert (run.status, run.failure_class) == ("failed", "budget")
