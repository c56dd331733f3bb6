"""Durable tools: a tool call completed in an earlier attempt returns its recorded output."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import InjectedToolCallId, ToolException, tool
from tidebase_langchain import DurableTool, durable_tool, durable_tools

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import StepFailed

from .conftest import Executions
from .scripted import research_tools
from .test_models import Interrupted, interrupt_first_attempt

CALL = {"type": "tool_call", "name": "search", "args": {"query": "tides"}, "id": "call_1"}


def test_a_replayed_tool_call_returns_its_tool_message_without_running(
    tide: Tidebase, executions: Executions
) -> None:
    search = durable_tool(research_tools(executions.record)[0])
    started: list[str] = []

    def lookup(run: RunContext, _: None) -> dict[str, Any]:
        message = search.invoke(CALL, config={"callbacks": [ToolStarts(started)]})
        interrupt_first_attempt(run)
        assert isinstance(message, ToolMessage)
        return {"id": message.tool_call_id, "content": message.content, "name": message.name}

    with pytest.raises(Interrupted):
        tide.run("lookup", lookup, run_id="t1")
    result = tide.run("lookup", lookup, run_id="t1")

    assert result == {"id": "call_1", "content": "3 sources on 'tides'", "name": "search"}
    assert executions == {"search": 1}
    assert started == ["search", "search"], "the replayed call is seen by callbacks too"
    (step,) = tide.runs.steps("t1")
    assert step.name == "langchain.tool.search.call_1"  # keyed by its tool_call_id


async def test_async_tools_and_plain_inputs(atide: AsyncTidebase, executions: Executions) -> None:
    @tool
    async def double(n: int) -> int:
        """Double a number."""
        executions.record("double")
        return n * 2

    durable = durable_tool(double)

    async def twice(run: AsyncRunContext, _: None) -> list[int]:
        results = [await durable.ainvoke({"n": 2}), await durable.ainvoke({"n": 2})]
        interrupt_first_attempt(run)
        return results

    with pytest.raises(Interrupted):
        await atide.run("twice", twice, run_id="t2")
    assert await atide.run("twice", twice, run_id="t2") == [4, 4]
    assert executions == {"double": 2}  # identical calls are two occurrences, both replayed


def test_a_durable_tool_is_still_the_same_tool(executions: Executions) -> None:
    search, save = research_tools(executions.record)
    durable = durable_tools([search, save])

    assert [t.name for t in durable] == ["search", "save"]
    assert all(isinstance(t, DurableTool) and isinstance(t, type(search)) for t in durable)
    assert durable[0].args == search.args and durable[0].description == search.description
    assert durable_tool(durable[0]) is durable[0]
    assert durable[0].invoke({"query": "x"}) == "3 sources on 'x'"  # outside a run: plain


def test_a_side_effect_without_idempotency_key_is_parked_after_a_failure(
    tide: Tidebase, executions: Executions
) -> None:
    @tool
    def send_email(to: str) -> str:
        """Send an email."""
        executions.record("send_email")
        raise ConnectionError("SMTP server went away mid-send")

    send = durable_tool(send_email, side_effects=["email"])

    def notify(run: RunContext, _: None) -> str:
        return str(send.invoke({"to": "ops@example.com"}))

    with pytest.raises(ConnectionError):  # the tool's own error, not the engine's wrapper
        tide.run("notify", notify, run_id="t3")
    with pytest.raises(StepFailed, match="parked for manual review"):
        tide.run("notify", notify, run_id="t3")
    assert executions == {"send_email": 1}


def test_an_idempotency_key_makes_a_side_effect_safe_to_retry(
    tide: Tidebase, executions: Executions
) -> None:
    failures = [ConnectionError("first try fails")]

    @tool
    def charge(order: str) -> str:
        """Charge an order."""
        executions.record("charge")
        if failures:
            raise failures.pop()
        return f"charged {order}"

    charge_once = durable_tools(
        [charge],
        side_effects={"charge": ["payments"]},
        idempotency_key={"charge": lambda args, call_id: f"charge-{args['order']}"},
    )[0]

    def checkout(run: RunContext, _: None) -> str:
        return str(charge_once.invoke({"order": "o-7"}))

    with pytest.raises(ConnectionError):
        tide.run("checkout", checkout, run_id="t4")
    assert tide.run("checkout", checkout, run_id="t4") == "charged o-7"
    assert executions == {"charge": 2}
    (step,) = tide.runs.steps("t4")
    assert (step.idempotency_key, step.attempt) == ("charge-o-7", 2)


def test_tool_errors_keep_their_langchain_handling(tide: Tidebase, executions: Executions) -> None:
    @tool
    def flaky(x: str) -> str:
        """Fails in a way the tool handles itself."""
        executions.record("flaky")
        raise ToolException("no results")

    flaky.handle_tool_error = True
    durable = durable_tool(flaky)

    def use(run: RunContext, _: None) -> str:
        message = durable.invoke({**CALL, "name": "flaky", "args": {"x": "y"}})
        interrupt_first_attempt(run)
        return f"{message.status}: {message.content}"

    with pytest.raises(Interrupted):
        tide.run("use", use, run_id="t5")
    assert tide.run("use", use, run_id="t5") == "error: no results"
    assert executions == {"flaky": 1}


def test_the_tool_body_finds_the_run_in_its_config(tide: Tidebase) -> None:
    @tool
    def deep(topic: str, config: RunnableConfig) -> str:
        """Research in sub-steps of the run."""
        run = config["configurable"]["tidebase_run"]
        return str(run.step("outline", lambda: f"outline of {topic}"))

    def research(run: RunContext, _: None) -> str:
        return str(durable_tool(deep).invoke({"topic": "tides"}))

    assert tide.run("research", research, run_id="t6") == "outline of tides"
    assert any(s.name.endswith("/outline") or s.name == "outline" for s in tide.runs.steps("t6"))


def test_langgraph_tool_node_runs_parallel_calls_as_steps(
    tide: Tidebase, executions: Executions
) -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    graph = StateGraph(MessagesState)
    graph.add_node("tools", ToolNode(durable_tools(research_tools(executions.record))))
    node = graph.add_edge(START, "tools").add_edge("tools", END).compile()
    turn = AIMessage(
        "",
        tool_calls=[
            {"name": "search", "args": {"query": "tides"}, "id": "c1"},
            {"name": "search", "args": {"query": "moon"}, "id": "c2"},
            {"name": "save", "args": {"note": "n"}, "id": "c3"},
        ],
    )

    def tools_turn(run: RunContext, _: None) -> list[str]:
        out = node.invoke({"messages": [turn]})
        interrupt_first_attempt(run)
        return [f"{m.tool_call_id}={m.content}" for m in out["messages"][1:]]

    with pytest.raises(Interrupted):
        tide.run("turn", tools_turn, run_id="t7")
    assert tide.run("turn", tools_turn, run_id="t7") == [
        "c1=3 sources on 'tides'",
        "c2=3 sources on 'moon'",
        "c3=saved 'n'",
    ]
    assert executions == {"search": 2, "save": 1}


class ToolTrace(BaseCallbackHandler):
    """A user's tracer: the tool runs it saw start (marked replayed or not) and end."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        metadata: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        replayed = bool((metadata or {}).get("tidebase_replayed"))
        self.seen.append(("start", serialized["name"], kw.get("tool_call_id"), replayed))

    def on_tool_end(self, output: Any, **kw: Any) -> None:
        self.seen.append(("end", getattr(output, "content", output)))

    def on_tool_error(self, error: BaseException, **kw: Any) -> None:
        self.seen.append(("error", str(error)))


def test_a_replayed_tool_call_fires_langchains_tool_callbacks_with_its_recorded_output(
    tide: Tidebase, executions: Executions
) -> None:
    search = durable_tool(research_tools(executions.record)[0])
    traces: list[ToolTrace] = []

    def lookup(run: RunContext, _: None) -> None:
        traces.append(ToolTrace())
        search.invoke(CALL, config={"callbacks": [traces[-1]]})
        interrupt_first_attempt(run)

    with pytest.raises(Interrupted):
        tide.run("lookup", lookup, run_id="t-traced")
    tide.run("lookup", lookup, run_id="t-traced")

    live, replayed = (trace.seen for trace in traces)
    # langchain-core 1.0 gives on_tool_start no tool_call_id; later releases do; a replay does.
    assert live in (
        [("start", "search", "call_1", False), ("end", "3 sources on 'tides'")],
        [("start", "search", None, False), ("end", "3 sources on 'tides'")],
    )
    assert replayed == [("start", "search", "call_1", True), ("end", "3 sources on 'tides'")]
    assert executions == {"search": 1}, "replayed without running the tool"


async def test_a_replayed_tool_error_fires_on_tool_error_as_the_live_call_did(
    atide: AsyncTidebase, executions: Executions
) -> None:
    @tool
    async def flaky(query: str) -> str:
        """Fails as a tool does: a ToolException the workflow handles."""
        executions.record("flaky")
        raise ToolException(f"no results for {query}")

    durable = durable_tool(flaky)
    traces: list[ToolTrace] = []

    async def lookup(run: AsyncRunContext, _: None) -> str:
        traces.append(ToolTrace())
        try:
            await durable.ainvoke({"query": "tides"}, config={"callbacks": [traces[-1]]})
        except ToolException as exc:
            # The run goes on past the failure: it is the tool's answer, replayed as such.
            fallback = f"fell back: {exc}"
            answer = await run.step("fall back", lambda: fallback)
        interrupt_first_attempt(run)
        return str(answer)

    with pytest.raises(Interrupted):
        await atide.run("lookup", lookup, run_id="t-traced-error")
    assert await atide.run("lookup", lookup, run_id="t-traced-error") == (
        "fell back: no results for tides"
    )

    live, replayed = (trace.seen for trace in traces)
    assert live == [("start", "flaky", None, False), ("error", "no results for tides")]
    assert replayed == [("start", "flaky", None, True), ("error", "no results for tides")]
    assert executions == {"flaky": 1}


class ToolStarts:
    """A user's callback handler: which tool bodies LangChain started."""

    def __new__(cls, seen: list[str]) -> Any:
        from langchain_core.callbacks import BaseCallbackHandler

        class Handler(BaseCallbackHandler):
            def on_tool_start(self, serialized: dict[str, Any], *args: Any, **kw: Any) -> None:
                seen.append(serialized["name"])

        return Handler()


def test_a_langgraph_command_replays_as_a_command(tide: Tidebase, executions: Executions) -> None:
    from langgraph.types import Command

    @tool
    def remember(fact: str, tool_call_id: Annotated[str, InjectedToolCallId]) -> Any:
        """Remember a fact in the agent's state."""
        executions.record("remember")
        reply = ToolMessage(f"noted {fact}", tool_call_id=tool_call_id)
        return Command(update={"facts": [fact], "messages": [reply]})

    durable = durable_tool(remember)
    call = {**CALL, "name": "remember", "args": {"fact": "moon"}}

    def note(run: RunContext, _: None) -> list[Any]:
        command = durable.invoke(call)
        interrupt_first_attempt(run)
        assert isinstance(command, Command)
        (message,) = command.update["messages"]
        assert isinstance(message, ToolMessage)
        return [command.update["facts"], message.tool_call_id, message.content]

    with pytest.raises(Interrupted):
        tide.run("note", note, run_id="t8")
    assert tide.run("note", note, run_id="t8") == [["moon"], "call_1", "noted moon"]
    assert executions == {"remember": 1}


def test_durable_tools_called_from_a_plain_thread_pool_are_checkpointed(
    tide: Tidebase, executions: Executions
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    search = durable_tool(research_tools(executions.record)[0])
    queries = ["tides", "waves", "currents"]

    def fan_out(run: RunContext, _: None) -> list[str]:
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = [pool.submit(search.invoke, {"query": q}) for q in queries]
            answers = [str(f.result()) for f in futures]
        interrupt_first_attempt(run)
        return answers

    with pytest.raises(Interrupted):
        tide.run("fan-out", fan_out, run_id="t9")
    assert tide.run("fan-out", fan_out, run_id="t9") == [f"3 sources on {q!r}" for q in queries]

    assert executions == {"search": 3}, "a tool call made in a pool thread ran again"
    steps = sorted(s.name for s in tide.runs.steps("t9"))
    assert len(steps) == 3 and all(s.endswith("/langchain.tool.search") for s in steps)


def test_a_tool_exception_the_workflow_handled_replays_as_that_exception(
    tide: Tidebase, executions: Executions
) -> None:
    """ "Search the primary index, on a ToolException fall back to the archive", then a crash:
    the resumed run takes the same branch without calling the primary again."""

    @tool
    def primary(query: str) -> str:
        """The primary index."""
        executions.record("primary")
        raise ToolException("index offline")

    @tool
    def archive(query: str) -> str:
        """The archive."""
        executions.record("archive")
        return f"archived {query}"

    primary_d, archive_d = durable_tool(primary), durable_tool(archive)

    def look_up(run: RunContext, _: None) -> str:
        try:
            answer = str(primary_d.invoke({"query": "tides"}))
        except ToolException as exc:
            answer = f"{exc} → " + str(archive_d.invoke({"query": "tides"}))
        interrupt_first_attempt(run)
        return answer

    with pytest.raises(Interrupted):
        tide.run("look-up", look_up, run_id="t10")
    assert tide.run("look-up", look_up, run_id="t10") == "index offline → archived tides"
    assert executions == {"primary": 1, "archive": 1}


async def test_a_sync_tool_awaited_in_an_async_run_is_checkpointed_on_the_runs_connection(
    atide: AsyncTidebase, executions: Executions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``await tool.ainvoke(...)`` of a tool made from a plain function (the usual ``@tool``):
    LangChain runs its whole ``invoke`` in a worker thread, whose checkpoint went through a
    second, blocking connection (a pool checkout per call). Only the function runs in a thread
    now; the call is checkpointed on the run's own connection, with its callbacks once."""
    from tidebase_core import operations

    blocking: list[object] = []
    enter = operations._BlockingView.__enter__
    monkeypatch.setattr(
        operations._BlockingView, "__enter__", lambda view: blocking.append(view) or enter(view)
    )
    search = durable_tool(research_tools(executions.record)[0])
    started: list[str] = []

    async def lookup(run: AsyncRunContext, _: None) -> Any:
        message = await search.ainvoke(CALL, config={"callbacks": [ToolStarts(started)]})
        interrupt_first_attempt(run)
        return message.content

    with pytest.raises(Interrupted):
        await atide.run("lookup", lookup, run_id="t10")
    assert await atide.run("lookup", lookup, run_id="t10") == "3 sources on 'tides'"
    assert executions == {"search": 1}
    assert blocking == [], "the checkpoint took a blocking connection of its own"
    assert started == ["search", "search"]
    (step,) = await atide.runs.steps("t10")
    assert step.name == "langchain.tool.search.call_1"
