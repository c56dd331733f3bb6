"""``TidebaseCallbackHandler`` events, and ``install()`` being idempotent and inert outside runs."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
import tidebase_langchain
from langchain_core.callbacks import CallbackManager
from langchain_core.globals import get_llm_cache
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tracers.context import _configure_hooks
from tidebase_langchain import TidebaseCallbackHandler, durable_tool

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase

from .conftest import Executions
from .scripted import ScriptedChatModel, echo_script, research_tools
from .test_models import Interrupted, interrupt_first_attempt


def test_events_carry_langchain_run_ids_and_do_not_shift_workflow_replay(
    tide: Tidebase, executions: Executions
) -> None:
    chain = ChatPromptTemplate.from_template("About {topic}") | ScriptedChatModel(
        script=echo_script, record=executions.record
    )
    search = durable_tool(research_tools(executions.record)[0])
    handler = TidebaseCallbackHandler()

    def traced(run: RunContext, _: None) -> str:
        answer = str(chain.invoke({"topic": "tides"}, config={"callbacks": [handler]}).content)
        search.invoke({"query": "tides"}, config={"callbacks": [handler]})
        run.state.set({"phase": "answered"})
        interrupt_first_attempt(run)
        run.state.set({"phase": "done"})
        return answer

    with pytest.raises(Interrupted):
        tide.run("traced", traced, run_id="e1")
    first = [e for e in tide.runs.events("e1") if e.type.startswith("langchain.")]
    assert tide.run("traced", traced, run_id="e1") == "echo: About tides"

    assert [e.type for e in first] == [
        "langchain.chain.started",
        "langchain.chain.started",  # the prompt template
        "langchain.chain.completed",
        "langchain.model.started",
        "langchain.model.completed",
        "langchain.chain.completed",
        "langchain.tool.started",
        "langchain.tool.completed",
    ]
    chain_id = first[0].payload["langchain_run_id"]
    model_started = first[3].payload
    assert uuid.UUID(chain_id) and model_started["parent_run_id"] == chain_id
    assert (model_started["provider"], first[4].payload["replayed"]) == ("scriptedchatmodel", False)
    assert first[6].payload["step"] == "langchain.tool.search"

    resumed = [e for e in tide.runs.events("e1") if e.type.startswith("langchain.")][len(first) :]
    assert [
        e.payload.get("replayed") for e in resumed if e.type == "langchain.model.completed"
    ] == [True]
    tool_events = [(e.type, e.payload["replayed"]) for e in resumed if ".tool." in e.type]
    assert tool_events == [("langchain.tool.started", True), ("langchain.tool.completed", True)]
    # Callback events are not workflow-body operations: the state updates replay exactly.
    assert [v.value for v in tide.runs.state_versions("e1")] == [
        {"phase": "answered"},
        {"phase": "done"},
    ]
    assert executions == {"model": 1, "search": 1}


def test_install_is_idempotent_and_attaches_no_handler_with_events_off(tide: Tidebase) -> None:
    hooks = len(_configure_hooks)
    cache = get_llm_cache()
    tidebase_langchain.install()
    tidebase_langchain.install()

    assert len(_configure_hooks) == hooks
    assert get_llm_cache() is cache
    # A callback manager with a handler costs every LangChain call its dispatch, in a run or
    # not; with events off the wrapped model calls write their own usage.
    handlers = CallbackManager.configure().handlers
    assert not [h for h in handlers if isinstance(h, TidebaseCallbackHandler)]


INSTALL_WITH_EVENTS = """
import tidebase_langchain
from langchain_core.callbacks import CallbackManager
from langchain_core.tracers.context import _configure_hooks
from tidebase_langchain import TidebaseCallbackHandler


def ours(**configure):
    handlers = CallbackManager.configure(**configure).handlers
    return [h for h in handlers if isinstance(h, TidebaseCallbackHandler)]


tidebase_langchain.install(events=True)
hooks = len(_configure_hooks)
tidebase_langchain.install(events=True)
assert len(_configure_hooks) == hooks, "a second hook"
[handler] = ours()
assert handler.events
mine = TidebaseCallbackHandler()
assert ours(inheritable_callbacks=[mine]) == [mine], "the call's own handler is not kept alone"
tidebase_langchain.install()
assert ours() == [handler] and not handler.events, "events not turned off"
"""


def test_install_with_events_attaches_one_handler_to_every_call() -> None:
    # In a process of its own: the handler, once attached, stays for the process.
    done = subprocess.run(
        [sys.executable, "-c", INSTALL_WITH_EVENTS], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr


def test_outside_a_run_the_handler_does_nothing(tide: Tidebase, executions: Executions) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record)
    handler = TidebaseCallbackHandler()
    assert model.invoke("hi", config={"callbacks": [handler]}).content == "echo: hi"
    assert tide.runs.list() == []


async def test_in_an_async_run_the_handler_writes_events_and_usage(
    atide: AsyncTidebase, executions: Executions
) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record, cache=False)
    handler = TidebaseCallbackHandler()

    async def ask(run: AsyncRunContext, _: None) -> str:
        reply = await model.ainvoke("async", config={"callbacks": [handler]})
        model.invoke("sync inside async", config={"callbacks": [handler]})
        return str(reply.content)

    assert await atide.run("ask", ask, run_id="e2") == "echo: async"
    types = [e.type for e in await atide.runs.events("e2") if e.type.startswith("langchain.")]
    assert types == ["langchain.model.started", "langchain.model.completed"] * 2
    assert len(await atide.usage.records("e2")) == 2  # cache=False: recorded by the handler
