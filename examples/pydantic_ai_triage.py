"""Bug triage with a durable Pydantic AI agent: search the logs, file a ticket, approve a deploy.

    pip install -e '.[pydantic-ai]'
    python examples/pydantic_ai_triage.py [run id]

Runs offline: a FunctionModel plays the model (set OPENAI_API_KEY to use gpt-4o-mini). Every
model request and tool call of the agent is a checkpointed step of the run, and each request's
tokens land in the usage ledger. The run stops at the deploy approval and prints a one-line
command to approve it from a second terminal. FAIL_AT=create_ticket kills the process inside
that tool: run it again with the same run id (without FAIL_AT) and the agent resumes there, its
model requests and the log search replayed, the ticket created once (idempotency key).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from dataclasses import dataclass

from pydantic import BaseModel
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models import Model
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.usage import RequestUsage
from tidebase_pydantic_ai import TidebaseDurability

from tidebase.aio import AsyncRunContext, AsyncTidebase


class Triage(BaseModel):
    service: str
    severity: int
    ticket: str
    rollback: bool


@dataclass
class Deps:
    tide_run: AsyncRunContext


class TicketAPI:
    """Stands in for a ticketing system that deduplicates by idempotency key."""

    async def create(self, title: str, body: str, *, idempotency_key: str) -> str:
        print(f"  ticketing API: create {title!r} (idempotency key {idempotency_key})")
        return "BUG-" + uuid.uuid5(uuid.NAMESPACE_URL, idempotency_key).hex[:6]


ticket_api = TicketAPI()


def offline_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """A deterministic stand-in for the LLM: search, file a ticket, then answer."""
    turn = sum(isinstance(m, ModelResponse) for m in messages)
    print(f"  model request {turn + 1}")
    usage = RequestUsage(input_tokens=350 + 120 * turn, output_tokens=40)
    if turn == 0:
        return ModelResponse([ToolCallPart("search_logs", {"service": "checkout"})], usage=usage)
    if turn == 1:
        call = ToolCallPart(
            "create_ticket",
            {"title": "checkout 500s", "body": "NullPointer in PaymentAdapter since 14:02"},
        )
        return ModelResponse([call], usage=usage)
    (ticket,) = [p.content for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
    answer = {"service": "checkout", "severity": 1, "ticket": ticket, "rollback": True}
    return ModelResponse([ToolCallPart(info.output_tools[0].name, answer)], usage=usage)


def model() -> Model | str:
    if os.environ.get("OPENAI_API_KEY"):
        return "openai:gpt-4o-mini"
    return FunctionModel(offline_model, model_name="gpt-4o-mini")


agent: Agent[Deps, Triage] = Agent(
    model(),
    name="bug-triage",
    deps_type=Deps,
    output_type=Triage,
    instructions="Triage the bug report: search the service's logs, file one ticket, then answer.",
    capabilities=[TidebaseDurability()],
)


@agent.tool
async def search_logs(ctx: RunContext[Deps], service: str) -> str:
    """Recent errors of a service."""
    print(f"  executing search_logs({service!r})")
    return f"{service}: 212 HTTP 500 since 14:02, NullPointerException in PaymentAdapter"


@agent.tool
async def create_ticket(ctx: RunContext[Deps], title: str, body: str) -> str:
    """File a bug ticket; returns its id."""
    print(f"  executing create_ticket({title!r})")
    if os.environ.get("FAIL_AT") == "create_ticket":
        print("  FAIL_AT=create_ticket: killing this process with SIGKILL in the tool", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    run = ctx.deps.tide_run
    key = f"ticket-{run.run_id}-{title}"
    ticket: str = await run.step(
        f"create-ticket:{title}",
        lambda: ticket_api.create(title, body, idempotency_key=key),
        input={"title": title, "body": body},
        side_effects=["ticketing-api"],
        idempotency_key=key,
    )
    return ticket


async def workflow(run: AsyncRunContext, input: dict[str, str]) -> dict[str, object]:
    result = await agent.run(input["report"], deps=Deps(tide_run=run))
    triage = result.output
    await run.state_set({"phase": "triaged", "triage": triage.model_dump()})
    if not triage.rollback:
        return {"ticket": triage.ticket, "deployed": False}

    command = (
        f'python -c "import tidebase; tidebase.Tidebase().gates.resolve('
        f"'{run.run_id}', 'approve-deploy:{triage.service}', 'approved', actor='you')\""
    )
    print(f"\n  waiting for approval. In another terminal:\n    {command}\n", flush=True)
    decision = await run.gate(f"approve-deploy:{triage.service}", f"Deploy {triage.service}?")
    if decision.approved:
        await run.step(
            f"rollback:{triage.service}",
            lambda: print(f"  rolling back {triage.service}"),
            side_effects=["deploys"],
            idempotency_key=f"rollback-{run.run_id}",
        )
    await run.state_set({"phase": "done"})
    return {"ticket": triage.ticket, "deployed": decision.approved, "by": decision.actor}


async def main() -> None:
    run_id = sys.argv[1] if len(sys.argv) > 1 else f"triage-{uuid.uuid4().hex[:8]}"
    print(f"run {run_id}   (resume with: python examples/pydantic_ai_triage.py {run_id})")
    report = "Checkout returns HTTP 500 for every card payment since 14:02."
    async with AsyncTidebase() as tide:
        result = await tide.run("bug-triage", workflow, run_id=run_id, input={"report": report})
        print(f"result: {result}")
        usage = await tide.usage.summary(run_id)
        print(f"usage:  {usage.input_tokens} input + {usage.output_tokens} output tokens")


if __name__ == "__main__":
    asyncio.run(main())
