"""An agent run checkpointed as a whole (``run.step("triage", lambda: agent.run(...))``) comes
back from its checkpoint as an ``AgentRunResult``: typed output, the run's messages."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.models.test import TestModel
from pydantic_ai.run import AgentRunResult
from tidebase_pydantic_ai.results import TAG as RESULT_TAG
from tidebase_pydantic_ai.results import dump_result

from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase_core.serialization import TAG, decode


class Triage(BaseModel):
    service: str
    severity: int


triage_agent = Agent(TestModel(), output_type=Triage)


def stored(result: AgentRunResult[object]) -> str:
    """The JSON a step stores for ``result`` through the codec."""
    return json.dumps({TAG: RESULT_TAG, "value": dump_result(result)})


async def test_a_stored_agent_run_result_loads_with_its_typed_output_and_messages() -> None:
    result = await triage_agent.run("billing is down")

    replayed = decode(stored(result))

    assert isinstance(replayed, AgentRunResult)
    assert replayed.output == result.output and isinstance(replayed.output, Triage)
    assert replayed.all_messages() == result.all_messages()
    assert replayed.new_messages() == result.new_messages()


async def test_plain_outputs_load_as_themselves() -> None:
    result = await Agent(TestModel(custom_output_text="fine")).run("status?")
    assert decode(stored(result)).output == "fine"


async def test_an_output_class_that_cannot_be_found_is_a_clear_error() -> None:
    class Local(BaseModel):  # defined in a function: no module attribute leads to it
        ok: bool

    payload = dump_result(await Agent(TestModel(), output_type=Local).run("x"))
    payload["output_class"] = payload["output_class"].replace("Local", "Gone")
    with pytest.raises(LookupError, match=r"output_type=AgentRunResult\[Gone\] to run.step"):
        decode(json.dumps({TAG: RESULT_TAG, "value": payload}))


async def test_an_explicit_output_type_names_the_class_of_generic_outputs() -> None:
    agent = Agent(TestModel(), output_type=list[Triage])
    result = await agent.run("x")

    replayed = decode(stored(result), AgentRunResult[list[Triage]])

    assert replayed.output == result.output and all(isinstance(t, Triage) for t in replayed.output)


async def test_a_resumed_run_gets_the_checkpointed_agent_run_back_typed(
    atide: AsyncTidebase,
) -> None:
    runs = 0

    async def run_agent() -> AgentRunResult[Triage]:
        nonlocal runs
        runs += 1
        return await triage_agent.run("billing is down")

    async def workflow(run: AsyncRunContext, input: None) -> list[str]:
        result = await run.step("triage", lambda: run_agent(), input={"report": "billing"})
        if run.attempt == 1:
            raise RuntimeError("crash after the agent finished")
        return [type(result.output).__name__, *(m.kind for m in result.all_messages())]

    with pytest.raises(RuntimeError):
        await atide.run("wf", workflow, run_id="pai-typed")
    assert await atide.run("wf", workflow, run_id="pai-typed") == [
        "Triage",
        "request",
        "response",
        "request",
    ]
    assert runs == 1


@dataclass
class HowToDeps:
    tide_run: AsyncRunContext


async def test_the_how_to_code_runs_as_written_and_replays(atide: AsyncTidebase) -> None:
    """The Pydantic AI how-to's bug-triage code, verbatim apart from the stub ticket API."""
    tickets: list[str] = []

    class TicketAPI:
        async def create(self, title: str, body: str) -> str:
            tickets.append(title)
            return f"TICKET-{len(tickets)}"

    ticket_api = TicketAPI()
    tide = atide
    agent = Agent(TestModel(), deps_type=HowToDeps)

    @agent.tool
    async def create_ticket(ctx: RunContext[HowToDeps], title: str, body: str) -> str:
        run = ctx.deps.tide_run
        return await run.step(
            f"create-ticket:{title}",
            lambda: ticket_api.create(title, body),
            input={"title": title, "body": body},
            side_effects=["ticketing-api"],
            idempotency_key=f"ticket-{run.run_id}-{title}",
        )

    async def workflow(run: AsyncRunContext, input: dict[str, str]) -> str:
        result = await run.step(
            "triage",
            lambda: agent.run(input["report"], deps=HowToDeps(tide_run=run)),
            input={"report": input["report"]},
        )
        await run.state_set({"phase": "done"})
        return result.output  # type: ignore[no-any-return]

    report = "checkout returns 500 since 14:02"
    first = await tide.run("bug-triage", workflow, run_id="how-to", input={"report": report})
    again = await tide.run("bug-triage", workflow, run_id="how-to", input={"report": report})
    assert first == again == '{"create_ticket":"TICKET-1"}'
    assert tickets == ["a"]
    names = [s.name for s in await tide.runs.steps("how-to")]
    assert names == ["triage/create-ticket:a", "triage"]  # a tool's step is scoped by its step
    assert await tide.runs.state("how-to") == {"phase": "done"}
