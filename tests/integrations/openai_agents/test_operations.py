"""The plugin on Tidebase's one durable-operation primitive (``durable_call``): failed model
calls recorded and replayed, usage once per real call, the provider's cost, a tool's changes to
``context=`` replayed, a stream cancelled mid-way, and stored class names never imported."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import openai
import pydantic
import pytest
from agents import Agent, Model, ModelResponse, RunContextWrapper, Usage, function_tool
from tidebase_openai_agents import run_agent, run_agent_streamed
from tidebase_openai_agents.typed_values import (
    apply_context,
    dump_context,
    dump_typed,
    load_typed,
)

from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import RunCancelled

from .scripted import Scripted, Shop, call, message, support_agents, unavailable
from .test_replay import crash_once, first_and_resumed


class Down(Scripted):
    """A primary model whose provider answers 503."""

    async def get_response(self, *args: Any, **kw: Any) -> Any:
        self.on_call(self.name)
        raise unavailable()


async def test_a_failed_model_call_is_recorded_and_the_fallback_replays(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    caught: list[tuple[type[BaseException], int | None]] = []
    primary = Agent(name="primary", model=Down("primary", {}, lambda n: ran.update([n])))
    backup = Agent(
        name="backup",
        model=Scripted("backup", {0: [message("from backup")]}, lambda n: ran.update([n])),
    )

    async def workflow(run: AsyncRunContext, input: None) -> str:
        try:
            result = await run_agent(run, primary, "hello")
        except openai.APIStatusError as exc:  # the workflow's own fallback
            caught.append((type(exc), exc.status_code))
            result = await run_agent(run, backup, "hello")
        return crash_once(run, result.final_output)

    first, resumed = await first_and_resumed(atide, "oai-fallback", workflow)
    assert first == resumed == "from backup"
    assert ran == {"primary": 1, "backup": 1}, "nothing runs again on resume"
    # The replayed failure is the class the provider raised, with its status code.
    assert caught == [(openai.InternalServerError, 503)] * 2
    steps = await atide.runs.steps("oai-fallback")
    assert [s.name for s in steps] == ["primary.run/model.request", "backup.run/model.request"]
    # Usage once per real call: the failed call spent nothing, the backup's call once.
    rows = await atide.usage.records("oai-fallback")
    assert [(r.step_name, r.attempt, r.input_tokens) for r in rows] == [
        ("backup.run/model.request", 1, 100)
    ]


async def test_a_failure_that_ended_the_attempt_is_called_again_on_resume(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()
    primary = Agent(name="primary", model=Down("primary", {}, lambda n: ran.update([n])))

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return (await run_agent(run, primary, "hello")).final_output

    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await atide.run("down", workflow, run_id="oai-down")
    # Nothing went on past the failure: the provider is asked again, not the record replayed.
    assert ran == {"primary": 2}


class Priced(Scripted):
    """A provider (OpenRouter, a LiteLLM proxy) that reports each call's cost."""

    async def get_response(self, *args: Any, **kw: Any) -> Any:
        response: ModelResponse = await super().get_response(*args, **kw)
        response.raw_usage = {"prompt_tokens": 100, "completion_tokens": 10, "cost": 0.5}
        return response


async def test_the_providers_reported_cost_wins_and_is_ledgered_once(
    atide: AsyncTidebase,
) -> None:
    agent = Agent(name="solo", model=Priced("solo", {0: [message("ok")]}, lambda _: None))

    async def workflow(run: AsyncRunContext, input: None) -> str:
        return crash_once(run, (await run_agent(run, agent, "hi")).final_output)

    await first_and_resumed(atide, "oai-cost", workflow)
    [row] = await atide.usage.records("oai-cost")
    assert (row.cost_usd, row.cost_source) == (Decimal("0.5"), "given")


class Booking(pydantic.BaseModel):
    """The customer-service example's context: tools fill it in."""

    passenger: str
    seat: str | None = None
    confirmation: str | None = None


@dataclass
class Cart:
    items: list[str]


def airline(on_call: Any) -> Agent[Any]:
    @function_tool
    async def update_seat(ctx: RunContextWrapper[Booking], seat: str) -> str:
        """Move the passenger to a seat."""
        on_call("update_seat")
        ctx.context.seat = seat
        ctx.context.confirmation = "LL0EZ6"
        return f"seat {seat} booked"

    return Agent(
        name="seats",
        model=Scripted(
            "seats",
            {0: [call("update_seat", {"seat": "12A"}, "call_seat")], 1: [message("Done: 12A.")]},
            on_call,
        ),
        tools=[update_seat],
    )


async def test_a_tools_changes_to_the_context_are_replayed(atide: AsyncTidebase) -> None:
    ran: Counter[str] = Counter()
    agent = airline(lambda name: ran.update([name]))
    finals: list[Booking] = []

    async def workflow(run: AsyncRunContext, input: None) -> dict[str, Any]:
        booking = Booking(passenger="Ada")  # each attempt starts from the user's fresh object
        result = await run_agent(run, agent, "Seat 12A please", context=booking)
        assert result.context_wrapper.context is booking, "changed in place, not replaced"
        finals.append(booking)
        return crash_once(run, booking.model_dump())

    first, resumed = await first_and_resumed(atide, "oai-seat", workflow)
    assert ran == {"seats": 2, "update_seat": 1}, "the tool did not run again"
    assert resumed == first == {"passenger": "Ada", "seat": "12A", "confirmation": "LL0EZ6"}
    assert finals[1].seat == "12A"


async def test_a_dataclass_context_is_replayed_too(atide: AsyncTidebase) -> None:
    ran: Counter[str] = Counter()

    @function_tool
    async def add(ctx: RunContextWrapper[Cart], item: str) -> str:
        """Add an item to the cart."""
        ran.update(["add"])
        ctx.context.items.append(item)
        return "added"

    agent = Agent(
        name="cart",
        model=Scripted(
            "cart", {0: [call("add", {"item": "tea"}, "call_add")], 1: [message("ok")]}, ran.update
        ),
        tools=[add],
    )

    async def workflow(run: AsyncRunContext, input: None) -> list[str]:
        cart = Cart(items=["milk"])
        await run_agent(run, agent, "add tea", context=cart)
        return crash_once(run, cart.items)

    assert await first_and_resumed(atide, "oai-cart", workflow) == (["milk", "tea"],) * 2
    assert ran["add"] == 1


class Slow(Model):
    """A model whose stream takes its time between events, as a real provider's does."""

    def __init__(self, inner: Model) -> None:
        self.inner = inner

    async def get_response(self, *args: Any, **kw: Any) -> Any:
        return await self.inner.get_response(*args, **kw)

    async def stream_response(self, *args: Any, **kw: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        async for event in self.inner.stream_response(*args, **kw):
            yield event
            await asyncio.sleep(0.02)


async def test_continuing_after_a_stream_cancelled_mid_way(atide: AsyncTidebase) -> None:
    ran: Counter[str] = Counter()
    deltas: list[str] = []
    triage = support_agents(lambda name: ran.update([name]), deltas.append)
    refunds = triage.handoffs[0]
    assert isinstance(refunds, Agent) and isinstance(refunds.model, Model)
    refunds.model = Slow(refunds.model)  # so that the cancel lands before response.completed

    async def workflow(run: AsyncRunContext, input: None) -> Any:
        streamed = run_agent_streamed(run, triage, "Refund order A1", context=Shop())
        async for event in streamed.stream_events():
            if event.type == "raw_response_event" and event.data.type.endswith(".delta"):
                streamed.cancel()  # mid-way through the final answer's stream
        # The user asks again in the same run: a new stream, never the cancelled one's key.
        again = run_agent_streamed(run, triage, "Refund order A1", context=Shop())
        [e async for e in again.stream_events()]
        return crash_once(run, again.final_output)

    first, resumed = await first_and_resumed(atide, "oai-cancel", workflow)
    assert first == resumed == "Refunded 30 EUR for order A1 (R-1)."
    names = [s.name for s in await atide.runs.steps("oai-cancel")]
    assert len(names) == len(set(names))
    assert "model.request#4" not in names, "the cancelled stream left no checkpoint"
    assert ran["refunds"] == 5, "2 + 2 on the first attempt, the cancelled call again on resume"


def test_a_stored_class_name_is_never_imported() -> None:
    assert "this" not in sys.modules
    with pytest.raises(TypeError, match="not a registered or already imported"):
        load_typed({"$openai_agents.class": "this:Anything", "value": {}})
    assert "this" not in sys.modules, "a name read from the database imported a module"
    # An imported class that is not a model or a dataclass is refused as well.
    with pytest.raises(TypeError):
        load_typed({"$openai_agents.class": "subprocess:Popen", "value": {}})


def test_models_dataclasses_dicts_and_tuples_come_back_as_they_were() -> None:
    value = {"booking": Booking(passenger="Ada", seat="1A"), "cart": Cart(["x"]), "t": (1, "a")}
    assert load_typed(dump_typed(value)) == {
        "booking": Booking(passenger="Ada", seat="1A"),
        "cart": Cart(["x"]),
        "t": (1, "a"),  # a tuple: str() of it, what the model is given, must not change
    }


def test_a_context_class_has_its_adapter_built_once_not_per_tool_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each tool call stores the context (and a replay puts it back) through pydantic: a
    dataclass's adapter takes ~0.3 ms to build, so it is built once per class."""

    @dataclass
    class Basket:
        items: list[str]

    built: list[Any] = []
    build = pydantic.TypeAdapter.__init__

    def counting(self: Any, tp: Any, *args: Any, **kwargs: Any) -> None:
        build(self, tp, *args, **kwargs)
        if tp is Basket:
            built.append(tp)

    monkeypatch.setattr(pydantic.TypeAdapter, "__init__", counting)
    basket = Basket(["milk"])
    for item in ("tea", "bread", "jam"):
        stored = dump_context(Basket([*basket.items, item]))
        apply_context(basket, stored)
    assert basket.items == ["milk", "tea", "bread", "jam"]
    assert len(built) == 1


def test_usage_of_a_real_call_is_typed() -> None:
    from tidebase_openai_agents.responses import usage_rows

    from tidebase_core.operations import Usage as LedgerUsage

    response = ModelResponse(
        output=[], usage=Usage(requests=1, input_tokens=3, output_tokens=2), response_id="r"
    )
    [row] = usage_rows(response, provider="openai", model="gpt-x")
    assert isinstance(row, LedgerUsage)
    assert (row.input_tokens, row.output_tokens, row.cost_usd) == (3, 2, None)


async def test_a_tool_returning_a_dict_with_a_tuple_and_a_model_resumes(
    atide: AsyncTidebase,
) -> None:
    ran: Counter[str] = Counter()

    @function_tool
    async def quote(route: str) -> dict[str, Any]:
        """Quote a route."""
        ran.update(["quote"])
        return {"route": route, "legs": ("CDG", "JFK"), "booking": Booking(passenger="Ada")}

    agent = Agent(
        name="quotes",
        model=Scripted(
            "quotes",
            {0: [call("quote", {"route": "CDG-JFK"}, "call_q")]},
            lambda n: ran.update([n]),
        ),
        tools=[quote],
        tool_use_behavior="stop_on_first_tool",  # the tool's result itself is the final output
    )

    async def workflow(run: AsyncRunContext, input: None) -> Any:
        output = (await run_agent(run, agent, "quote CDG-JFK")).final_output
        return crash_once(run, output if isinstance(output, str) else repr(output))

    first, resumed = await first_and_resumed(atide, "oai-dict", workflow)
    assert first == resumed and "JFK" in first and "Ada" in first
    assert ran["quote"] == 1


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_call_that_completed_while_a_cancel_arrived_is_still_in_the_ledger(
    atide: AsyncTidebase, streamed: bool
) -> None:
    run_id = f"oai-cancel-late-{streamed}"

    class Late(Scripted):
        async def get_response(self, *args: Any, **kw: Any) -> Any:
            # The cancel lands while the call is in flight: its checkpoint will be refused.
            await atide.runs.cancel(run_id, reason="stop")
            return await super().get_response(*args, **kw)

    agent = Agent(name="solo", model=Late("solo", {0: [message("late")]}, lambda _: None))

    async def workflow(run: AsyncRunContext, input: None) -> Any:
        if not streamed:
            return (await run_agent(run, agent, "hi")).final_output
        result = run_agent_streamed(run, agent, "hi")
        [e async for e in result.stream_events()]
        return result.final_output

    with pytest.raises(RunCancelled):
        await atide.run("wf", workflow, run_id=run_id)
    rows = await atide.usage.records(run_id)
    assert [(r.step_name, r.input_tokens, r.output_tokens) for r in rows] == [
        ("solo.run/model.request", 100, 10)
    ], "the call was paid for: its usage is in the ledger without its checkpoint"
    assert not [s for s in await atide.runs.steps(run_id) if s.status == "completed"]


async def test_gathered_agent_runs_replay_their_own_work_without_branches(
    atide: AsyncTidebase,
) -> None:
    """Each ``run_agent`` keys its calls under its own key, taken in program order when it
    starts: two runs of one agent gathered together never see each other's checkpoints."""
    ran: Counter[str] = Counter()

    @function_tool
    async def lookup(service: str) -> str:
        ran[service] += 1
        await asyncio.sleep(0.05 if service == "billing" else 0.01)  # finish out of order
        return f"{service}: {len(service)} errors"

    def agent_for(service: str) -> Agent[Any]:
        turns = {0: [call("lookup", {"service": service}, "call_1")], 1: [message(service)]}
        return Agent(
            name="ops",
            model=Scripted("ops", turns, lambda _: ran.update(["model"])),
            tools=[lookup],
        )

    async def workflow(run: AsyncRunContext, input: None) -> list[str]:
        results = await asyncio.gather(
            run_agent(run, agent_for("billing"), "billing?"),
            run_agent(run, agent_for("search"), "search?"),
        )
        return crash_once(run, [r.final_output for r in results])

    first, resumed = await first_and_resumed(atide, "oai-gathered", workflow)
    assert first == resumed == ["billing", "search"]
    assert ran == {"model": 4, "billing": 1, "search": 1}, "work ran again on resume"
    steps = {s.name: s.output for s in await atide.runs.steps("oai-gathered")}
    assert steps["ops.run/tool.lookup.call_1"] == "billing: 7 errors"
    assert steps["ops.run#2/tool.lookup.call_1"] == "search: 6 errors"
