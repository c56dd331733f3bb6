"""Chat-model calls inside a run replay from their checkpoints; usage is recorded once.

Each workflow here raises at the end of its first attempt, so invoking the run again resumes
it: everything it did is replayed, nothing runs twice.
"""

from __future__ import annotations

import operator
from decimal import Decimal
from typing import Annotated, Any, TypedDict

import pytest
import tidebase_langchain
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.messages import BaseMessage, messages_to_dict

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import InputMismatch

from .conftest import Executions
from .scripted import (
    MODEL,
    ScriptedChatModel,
    arun_agent_loop,
    echo_script,
    research_tools,
    run_agent_loop,
)


class Interrupted(Exception):
    """Ends a workflow's first attempt, as a crash would."""


def interrupt_first_attempt(run: RunContext | AsyncRunContext) -> None:
    if run.attempt == 1:
        raise Interrupted


def history(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return messages_to_dict(messages)


def test_a_resumed_run_replays_model_calls_and_records_their_usage_once(
    tide: Tidebase, executions: Executions
) -> None:
    model = ScriptedChatModel(record=executions.record)
    tools = tidebase_langchain.durable_tools(research_tools(executions.record))

    def research(run: RunContext, question: str) -> list[dict[str, Any]]:
        messages = history(run_agent_loop(model, tools, question))
        interrupt_first_attempt(run)
        return messages

    with pytest.raises(Interrupted):
        tide.run("research", research, run_id="r1", input="tides")
    first = dict(executions)
    assert first == {"model": 3, "search": 1, "save": 1}
    ledger = [
        (r.provider, r.model, r.input_tokens, r.output_tokens) for r in tide.usage.records("r1")
    ]
    assert len(ledger) == 3 and {r[:2] for r in ledger} == {("openai", MODEL)}

    with get_usage_metadata_callback() as stock:  # LangChain's own usage counter, for contrast
        resumed = tide.run("research", research, run_id="r1")

    assert executions == first, "the resumed attempt executed a model call or a tool again"
    assert [
        (r.provider, r.model, r.input_tokens, r.output_tokens) for r in tide.usage.records("r1")
    ] == ledger
    # The stock handler counts the replayed calls as if they had run: ours does not.
    assert stock.usage_metadata[MODEL]["total_tokens"] == sum(r[2] + r[3] for r in ledger)
    assert resumed[-1]["data"]["content"] == "Done. saved \"found: 3 sources on 'tides'\""
    assert tide.usage.summary("r1").cost_usd > 0  # priced from the model the provider named


async def test_async_calls_replay_the_same_way(
    atide: AsyncTidebase, executions: Executions
) -> None:
    model = ScriptedChatModel(record=executions.record)
    tools = tidebase_langchain.durable_tools(research_tools(executions.record))

    async def research(run: AsyncRunContext, question: str) -> list[dict[str, Any]]:
        messages = history(await arun_agent_loop(model, tools, question))
        interrupt_first_attempt(run)
        return messages

    with pytest.raises(Interrupted):
        await atide.run("research", research, run_id="a1", input="tides")
    first = await atide.runs.steps("a1")
    resumed = await atide.run("research", research, run_id="a1")

    assert executions == {"model": 3, "search": 1, "save": 1}
    assert len(first) == 5 and len(await atide.usage.records("a1")) == 3
    assert resumed[2]["data"]["tool_call_id"] == "call_search"


def test_batch_replays_every_prompt_whatever_order_the_threads_take(
    tide: Tidebase, executions: Executions
) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record)
    prompts = [f"question {i}" for i in range(6)]

    def ask_all(run: RunContext, _: None) -> list[str]:
        answers = [str(m.content) for m in model.batch(prompts)]
        interrupt_first_attempt(run)
        return answers

    with pytest.raises(Interrupted):
        tide.run("batch", ask_all, run_id="b1")
    answers = tide.run("batch", ask_all, run_id="b1")

    assert answers == [f"echo: question {i}" for i in range(6)]
    assert executions == {"model": 6}
    assert len(tide.usage.records("b1")) == 6


async def test_abatch_replays_too(atide: AsyncTidebase, executions: Executions) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record)

    async def ask_all(run: AsyncRunContext, _: None) -> list[str]:
        answers = [str(m.content) for m in await model.abatch(["a", "b", "a"])]
        interrupt_first_attempt(run)
        return answers

    with pytest.raises(Interrupted):
        await atide.run("abatch", ask_all, run_id="b2")
    assert await atide.run("abatch", ask_all, run_id="b2") == ["echo: a", "echo: b", "echo: a"]
    assert executions == {"model": 3}  # the repeated prompt is its own call, replayed as such
    names = sorted(s.name for s in await atide.runs.steps("b2"))
    assert len(names) == 3 and all(n.startswith("langchain.model.") for n in names), names


def test_a_changed_prompt_inside_a_step_raises_input_mismatch(
    tide: Tidebase, executions: Executions
) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record)
    prompts = ["What is a tide?", "What is a wave?"]

    def ask(run: RunContext, _: None) -> str:
        def body() -> str:
            answer = str(model.invoke(prompts[run.attempt - 1]).content)
            interrupt_first_attempt(run)  # the step fails after its model call
            return answer

        return str(run.step("ask", body))

    with pytest.raises(Interrupted):
        tide.run("ask", ask, run_id="m1")
    with pytest.raises(InputMismatch) as mismatch:
        tide.run("ask", ask, run_id="m1")

    assert mismatch.value.step == "ask/langchain.model"
    assert executions == {"model": 1}


def test_a_changed_prompt_in_the_workflow_body_raises_input_mismatch(
    tide: Tidebase, executions: Executions
) -> None:
    """Model calls are keyed by their order, with the content as the input hash: a workflow
    that now sends another prompt at the same place has diverged."""
    model = ScriptedChatModel(script=echo_script, record=executions.record)
    prompts = ["What is a tide?", "What is a wave?"]

    def ask(run: RunContext, _: None) -> str:
        answer = str(model.invoke(prompts[run.attempt - 1]).content)
        interrupt_first_attempt(run)
        return answer

    with pytest.raises(Interrupted):
        tide.run("ask", ask, run_id="m2")
    with pytest.raises(InputMismatch) as mismatch:
        tide.run("ask", ask, run_id="m2")
    assert mismatch.value.step == "langchain.model"
    assert executions == {"model": 1}


def test_outside_a_run_models_are_untouched(tide: Tidebase, executions: Executions) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record)
    assert model.invoke("hello").content == model.invoke("hello").content == "echo: hello"
    assert [c.content for c in model.stream("hi there")] == ["echo:", " hi", " there"]
    assert executions == {"model": 3}
    assert tide.runs.list() == []


def test_the_users_own_cache_keeps_working_outside_runs(
    tide: Tidebase, executions: Executions
) -> None:
    before = get_llm_cache()
    set_llm_cache(InMemoryCache())
    tidebase_langchain.install()  # again: the user's cache becomes the fallback
    try:
        model = ScriptedChatModel(script=echo_script, record=executions.record)
        model.invoke("hello")
        model.invoke("hello")
        assert executions == {"model": 1}, "the user's cache did not answer outside the run"

        def ask(run: RunContext, _: None) -> str:
            answer = str(model.invoke("inside").content)
            interrupt_first_attempt(run)
            return answer

        with pytest.raises(Interrupted):
            tide.run("ask", ask, run_id="c1")
        assert tide.run("ask", ask, run_id="c1") == "echo: inside"
        assert executions == {"model": 2}
        assert len(tide.usage.records("c1")) == 1
    finally:
        set_llm_cache(before)


def test_a_model_with_cache_false_is_not_replayed_but_its_usage_is_recorded(
    tide: Tidebase, executions: Executions
) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record, cache=False)

    def ask(run: RunContext, _: None) -> str:
        answer = str(model.invoke("uncached").content)
        interrupt_first_attempt(run)
        return answer

    with pytest.raises(Interrupted):
        tide.run("ask", ask, run_id="u1")
    tide.run("ask", ask, run_id="u1")

    assert executions == {"model": 2}
    records = tide.usage.records("u1")
    assert [(r.attempt, r.model) for r in records] == [(1, MODEL), (2, MODEL)]


async def test_a_model_with_cache_false_is_ledgered_once_per_real_call_on_every_path(
    atide: AsyncTidebase, executions: Executions
) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record, cache=False)
    # A handler of the caller's own as well: the calls' usage is written once, not again by it.
    config: Any = {"callbacks": [tidebase_langchain.TidebaseCallbackHandler(events=False)]}

    async def ask(run: AsyncRunContext, _: None) -> list[str]:
        return [
            str((await model.ainvoke("ainvoke")).content),
            str(model.invoke("invoke", config=config).content),
            "".join([str(c.content) async for c in model.astream("astream", config=config)]),
            "".join(str(c.content) for c in model.stream("stream")),
        ]

    answers = await atide.run("ask", ask, run_id="u2")

    assert answers == ["echo: ainvoke", "echo: invoke", "echo: astream", "echo: stream"]
    assert executions == {"model": 4}
    records = await atide.usage.records("u2")
    assert [r.model for r in records] == [MODEL] * 4
    assert all(r.input_tokens for r in records)


def test_every_real_call_is_in_the_ledger_once_across_attempts(
    tide: Tidebase, executions: Executions
) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record)

    def ask(run: RunContext, _: None) -> list[str]:
        answers = [str(model.invoke("same").content)]
        # Each attempt asks something new in a step of its own that then fails.
        ask = f"ask-{run.attempt}"
        answers.append(
            str(run.step(ask, lambda: _fail_before_3(run, model.invoke(f"q{run.attempt}"))))
        )
        return answers

    for _ in range(2):
        with pytest.raises(Interrupted):
            tide.run("ask", ask, run_id="m3")
    assert tide.run("ask", ask, run_id="m3") == ["echo: same", "echo: q3"]

    assert executions == {"model": 4}  # "same" once, then q1, q2, q3
    assert sorted((r.attempt, r.step_name, r.input_tokens) for r in tide.usage.records("m3")) == [
        (1, "ask-1/langchain.model", 2),  # q1
        (1, "langchain.model", 4),  # "same"
        (2, "ask-2/langchain.model", 2),  # q2
        (3, "ask-3/langchain.model", 2),  # q3
    ]


def _fail_before_3(run: RunContext, message: BaseMessage) -> str:
    if run.attempt < 3:
        raise Interrupted
    return str(message.content)


class Fanout(TypedDict):
    topic: str
    answers: Annotated[list[str], operator.add]


def parallel_graph(model: ScriptedChatModel, prompts: list[str]) -> Any:
    """START → one node per prompt, all in the same super-step (LangGraph runs them in
    parallel: threads for invoke, tasks for ainvoke) → END."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(Fanout)
    for i, prompt in enumerate(prompts):

        def ask(state: Fanout, prompt: str = prompt) -> dict[str, list[str]]:
            return {"answers": [str(model.invoke(f"{prompt} {state['topic']}").content)]}

        async def aask(state: Fanout, prompt: str = prompt) -> dict[str, list[str]]:
            return {"answers": [str((await model.ainvoke(f"{prompt} {state['topic']}")).content)]}

        from langchain_core.runnables import RunnableLambda

        graph.add_node(f"n{i}", RunnableLambda(ask, afunc=aask))
        graph.add_edge(START, f"n{i}")
        graph.add_edge(f"n{i}", END)
    return graph.compile()


PROMPTS = ["define", "explain", "define", "illustrate"]  # two parallel calls say the same


def test_parallel_langgraph_nodes_replay_by_content(tide: Tidebase, executions: Executions) -> None:
    pytest.importorskip("langgraph")
    model = ScriptedChatModel(script=echo_script, record=executions.record)
    graph = parallel_graph(model, PROMPTS)

    def fan_out(run: RunContext, _: None) -> list[str]:
        answers = sorted(graph.invoke({"topic": "tides", "answers": []})["answers"])
        interrupt_first_attempt(run)
        return answers

    with pytest.raises(Interrupted):
        tide.run("fan-out", fan_out, run_id="p1")
    assert tide.run("fan-out", fan_out, run_id="p1") == sorted(f"echo: {p} tides" for p in PROMPTS)
    assert executions == {"model": 4}
    keys = sorted(s.name for s in tide.runs.steps("p1"))
    assert len(keys) == 4 and all(k.startswith("langchain.model.") for k in keys), keys


async def test_parallel_langgraph_nodes_replay_by_content_async(
    atide: AsyncTidebase, executions: Executions
) -> None:
    pytest.importorskip("langgraph")
    model = ScriptedChatModel(script=echo_script, record=executions.record)
    graph = parallel_graph(model, PROMPTS)

    async def fan_out(run: AsyncRunContext, _: None) -> list[str]:
        answers = sorted((await graph.ainvoke({"topic": "tides", "answers": []}))["answers"])
        interrupt_first_attempt(run)
        return answers

    with pytest.raises(Interrupted):
        await atide.run("fan-out", fan_out, run_id="p2")
    assert len(await atide.run("fan-out", fan_out, run_id="p2")) == 4
    assert executions == {"model": 4}
    assert len(await atide.usage.records("p2")) == 4
    keys = [s.name for s in await atide.runs.steps("p2")]
    assert len(keys) == 4 and all(k.startswith("langchain.model.") for k in keys), keys


def test_sequential_calls_are_keyed_by_order(tide: Tidebase, executions: Executions) -> None:
    """A call made in the workflow body (or a single LangGraph node) is keyed by its place."""
    model = ScriptedChatModel(script=echo_script, record=executions.record)

    def ask(run: RunContext, _: None) -> list[str]:
        return [str(model.invoke(p).content) for p in ("a", "b", "a")]

    assert tide.run("ask", ask, run_id="o1") == ["echo: a", "echo: b", "echo: a"]
    assert [s.name for s in tide.runs.steps("o1")] == [
        "langchain.model",
        "langchain.model#2",
        "langchain.model#3",
    ]


def test_batch_calls_are_keyed_by_content(tide: Tidebase, executions: Executions) -> None:
    model = ScriptedChatModel(script=echo_script, record=executions.record)

    def ask(run: RunContext, _: None) -> list[str]:
        return [str(m.content) for m in model.batch(["a", "b", "a"])]

    assert tide.run("ask", ask, run_id="o2") == ["echo: a", "echo: b", "echo: a"]
    names = sorted(s.name.split("#")[0] for s in tide.runs.steps("o2"))
    assert len(set(names)) == 2 and all(n.startswith("langchain.model.") for n in names), names


class GatewayModel(ScriptedChatModel):
    """A model behind a gateway that reports each call's cost (OpenRouter's ``cost``)."""

    def _answer(self, messages: list[BaseMessage]) -> Any:
        answer = super()._answer(messages)
        meta = {**answer.response_metadata, "token_usage": {"cost": 0.5}}
        return answer.model_copy(update={"response_metadata": meta})


def test_the_cost_the_provider_reports_wins_over_the_price_table(
    tide: Tidebase, executions: Executions
) -> None:
    model = GatewayModel(script=echo_script, record=executions.record)

    def ask(run: RunContext, _: None) -> str:
        return str(model.invoke("tides").content)

    tide.run("ask", ask, run_id="$1")
    (record,) = tide.usage.records("$1")
    assert (record.cost_usd, record.cost_source, record.model) == (Decimal("0.5"), "given", MODEL)


def test_a_checkpoint_naming_a_class_off_the_allow_list_is_refused() -> None:
    """Replayed messages are rebuilt by LangChain's ``load`` from an allow-list of message
    classes: a checkpoint naming any other class (an edited row, another plugin's data) is an
    error, never an import."""
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from tidebase_langchain.codec import dump_result, load_result

    stored = dump_result(ChatResult(generations=[ChatGeneration(message=AIMessage("hi"))]))
    assert load_result(stored).generations[0].message == AIMessage("hi")

    stored["generations"][0]["message"]["id"] = ["langchain", "prompts", "PromptTemplate"]
    with pytest.raises(ValueError, match=r"PromptTemplate, which is not allowed"):
        load_result(stored)


@pytest.mark.parametrize("streamed", [False, True])
def test_a_call_that_completed_while_a_cancel_arrived_is_still_in_the_ledger(
    tide: Tidebase, streamed: bool
) -> None:
    from tidebase.errors import RunCancelled

    run_id = f"cancel-late-{streamed}"

    def answer(messages: Any) -> Any:
        # The cancel lands while the call is in flight: its checkpoint will be refused.
        tide.runs.cancel(run_id, reason="stop")
        return echo_script(messages)

    model = ScriptedChatModel(script=answer)

    def ask(run: RunContext, _: None) -> str:
        if streamed:
            return "".join(str(c.content) for c in model.stream("tides"))
        return str(model.invoke("tides").content)

    with pytest.raises(RunCancelled):
        tide.run("ask", ask, run_id=run_id)
    rows = tide.usage.records(run_id)
    assert [(r.step_name, r.output_tokens) for r in rows] == [("langchain.model", 7)], (
        "the call was paid for: its usage is in the ledger without its checkpoint"
    )
    assert not [s for s in tide.runs.steps(run_id) if s.status == "completed"]


class Overloaded(Exception):
    """A provider's 503."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def test_a_failed_model_call_the_workflow_went_past_replays_as_that_failure(
    tide: Tidebase, executions: Executions
) -> None:
    """``with_retry`` (or a fallback) after a provider error, then a crash: the resumed run
    sees the same error at the same place, retries from the recorded answer, and neither
    calls the provider again nor shifts the calls that follow."""
    failures = iter([Overloaded("overloaded, retry later", 503)])

    def flaky(messages: Any) -> Any:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return echo_script(messages)

    model = ScriptedChatModel(script=flaky, record=executions.record)
    retrying = model.with_retry(
        retry_if_exception_type=(Overloaded,), wait_exponential_jitter=False
    )
    seen: list[int] = []

    def ask(run: RunContext, _: None) -> list[str]:
        try:
            first = str(model.invoke("tides").content)
        except Overloaded as exc:  # the recorded failure, rebuilt as the provider's class
            seen.append(exc.status)
            first = str(retrying.invoke("tides").content)
        answers = [first, str(model.invoke("waves").content)]
        interrupt_first_attempt(run)
        return answers

    with pytest.raises(Interrupted):
        tide.run("ask", ask, run_id="f1")
    assert tide.run("ask", ask, run_id="f1") == ["echo: tides", "echo: waves"]

    assert executions == {"model": 3}, "a model call ran again on resume"
    assert seen == [503, 503]
    assert len(tide.usage.records("f1")) == 2  # the failed call reported no usage


@pytest.mark.parametrize("asynchronous", [False, True])
def test_runnable_parallel_branches_are_keyed_by_content(
    tide: Tidebase, executions: Executions, asynchronous: bool
) -> None:
    import asyncio

    from langchain_core.prompts import ChatPromptTemplate
    from langchain_core.runnables import RunnableParallel

    model = ScriptedChatModel(script=echo_script, record=executions.record)
    both = RunnableParallel(
        short=ChatPromptTemplate.from_template("{topic} in brief") | model,
        long=ChatPromptTemplate.from_template("{topic} at length") | model,
    )

    def ask(run: RunContext, _: None) -> list[str]:
        out = (
            asyncio.run(both.ainvoke({"topic": "tides"}))
            if asynchronous
            else both.invoke({"topic": "tides"})
        )
        interrupt_first_attempt(run)
        return [str(out["short"].content), str(out["long"].content)]

    run_id = f"rp-{asynchronous}"
    with pytest.raises(Interrupted):
        tide.run("ask", ask, run_id=run_id)
    assert tide.run("ask", ask, run_id=run_id) == ["echo: tides in brief", "echo: tides at length"]
    assert executions == {"model": 2}
    names = [s.name for s in tide.runs.steps(run_id)]
    assert len(names) == 2 and all(n.startswith("langchain.model.") for n in names), names


@pytest.mark.parametrize("how", ["invoke", "stream", "astream", "middleware"])
def test_a_budget_stops_model_calls_within_one_call_of_its_cap(
    tide: Tidebase, executions: Executions, how: str
) -> None:
    import asyncio

    from tidebase import Budget
    from tidebase.errors import BudgetExceeded

    model = ScriptedChatModel(script=echo_script, record=executions.record)

    async def astreamed(prompt: str) -> str:
        return "".join([str(c.content) async for c in model.astream(prompt)])

    def call(prompt: str) -> str:
        if how == "stream":
            return "".join(str(c.content) for c in model.stream(prompt))
        if how == "astream":
            return asyncio.run(astreamed(prompt))
        return str(model.invoke(prompt).content)

    def ask(run: RunContext, _: None) -> list[str]:
        if how == "middleware":
            pytest.importorskip("langchain.agents")
            from langchain.agents import create_agent
            from tidebase_langchain import TidebaseMiddleware

            agent = create_agent(model, [], middleware=[TidebaseMiddleware()])
            return [
                str(agent.invoke({"messages": [{"role": "user", "content": p}]})["messages"][-1])
                for p in ("tides", "waves", "winds")
            ]
        return [call(p) for p in ("tides", "waves", "winds")]

    # Each call is 5 + 7 = 12 tokens: the second passes the cap of 20, the third is refused
    # before it is sent.
    with pytest.raises(BudgetExceeded):
        tide.run("ask", ask, run_id=f"budget-{how}", budget=Budget(tokens=20))
    assert executions == {"model": 2}
    assert tide.usage.summary(f"budget-{how}").total_tokens == 24


def test_model_calls_from_a_plain_thread_pool_are_keyed_in_a_branch_per_thread(
    tide: Tidebase, executions: Executions
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    model = ScriptedChatModel(script=echo_script, record=executions.record)

    def fan_out(run: RunContext, _: None) -> list[str]:
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = [pool.submit(model.invoke, q) for q in ("a", "b", "c")]
            answers = [str(f.result().content) for f in futures]
        interrupt_first_attempt(run)
        return answers

    with pytest.raises(Interrupted):
        tide.run("fan-out", fan_out, run_id="tp1")
    assert tide.run("fan-out", fan_out, run_id="tp1") == ["echo: a", "echo: b", "echo: c"]
    assert executions == {"model": 3}
    names = sorted(s.name for s in tide.runs.steps("tp1"))
    assert len(names) == 3 and all(n.endswith("/langchain.model") for n in names), names
