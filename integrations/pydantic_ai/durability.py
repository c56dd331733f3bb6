"""``TidebaseDurability``: a Pydantic AI capability that makes an agent's work steps of the run.

Built on Pydantic AI's public durable-execution builder API: the framework wraps model requests
(streamed ones included), tool calls and argument validation of function, MCP and dynamic
toolsets, event-stream handler calls and capability operations, and hands each one to
``TidebaseOperationBackend.execute`` as one durable unit, which is one ``run.step``.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic_ai.agent.abstract import AbstractAgent
from pydantic_ai.capabilities import AbstractCapability, WrapRunHandler
from pydantic_ai.durable_exec import (
    BaseDurabilityCapability,
    DurabilityEngineSpec,
    RoleBasedOperationConfig,
)
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import AgentDepsT, RunContext
from tidebase_core.keys import entered
from tidebase_core.operations import Operation, durable_call
from tidebase_core.plugin import AnyRunContext, current_run, input_hash

from .backend import TidebaseOperationBackend
from .codec import TIDEBASE_CODEC
from .deps import check_deps_run

__all__ = ["DEFAULT_AGENT_NAME", "TidebaseDurability"]

DEFAULT_AGENT_NAME = "agent"
"""Names the steps of an agent built without ``name=`` (``agent__model.request`` …)."""


def _now() -> datetime:
    return datetime.now(UTC)


class TidebaseDurability(BaseDurabilityCapability[AgentDepsT]):
    """Checkpoint every model request and tool call of the agent in the active Tidebase run.

    ``Agent(..., capabilities=[TidebaseDurability()])``, or per run
    ``agent.run(..., capabilities=[TidebaseDurability()])``. Outside a run it does nothing.
    Inside the body of a step (``run.step("triage", lambda: agent.run(...))``) the agent's
    operations are keyed under that step: a completed step replays as a whole, a retried one
    replays the calls its earlier try completed, and every real model call is in the ledger.
    """

    engine_spec: ClassVar[DurabilityEngineSpec] = DurabilityEngineSpec(
        engine_name="Tidebase",
        durable_unit_noun="step",
        durable_container_noun="run",
        # Steps store JSON: the framework reduces each result to JSON values inside the step
        # (Pydantic AI's JSON codec, with bytes as base64: see codec.py).
        codec=TIDEBASE_CODEC,
        # Tool calls are keyed by their call id (see backend): they may run in parallel.
        sequential_tools_in_durable_context=False,
        # A toolset passed to one run was not wrapped when the agent was built: its tools would
        # run un-checkpointed, so the framework refuses it inside a run.
        unsupported_runtime_toolset_kinds=frozenset({"function", "mcp", "dynamic"}),
    )

    def for_agent(self, agent: AbstractAgent[AgentDepsT, Any]) -> AbstractCapability[AgentDepsT]:
        if self.name or agent.name:
            return super().for_agent(agent)
        # Keys are per run and ordered, so an unnamed agent's steps need no unique prefix.
        named = copy.copy(self)
        named.name = DEFAULT_AGENT_NAME
        return named.for_agent(agent)

    @property
    def in_durable_context(self) -> bool:
        return current_run() is not None

    def get_durable_operation_backend(self) -> TidebaseOperationBackend:
        return TidebaseOperationBackend(
            agent_name=self.name,
            default_model_id=self.default_model_id,
            config=RoleBasedOperationConfig(model=None, event=None, capability=None, tool=None),
        )

    async def wrap_run(
        self, ctx: RunContext[AgentDepsT], *, handler: WrapRunHandler
    ) -> AgentRunResult[Any]:
        check_deps_run(ctx.deps)
        run = current_run()
        agent_key = _agent_key(run, ctx.run_id)
        if run is None or agent_key is None:
            return await super().wrap_run(ctx, handler=handler)
        # Everything this agent run does is keyed under its own key (taken in program order
        # when it started): two agent runs gathered together never share a sequence. Pydantic
        # AI carries context variables set here into the caller's task for the run.
        with entered(run._execution.scope_under(agent_key)):
            return await super().wrap_run(ctx, handler=handler)

    # Replay-stable ids and start time (hooks of Pydantic AI >= 2.62; unused before).

    def get_default_run_id(self) -> str | None:
        run = current_run()
        if run is None or not self.in_durable_context:
            return None
        return f"{run.run_id}:{run.next_key(f'{self.name}__run')}"

    def get_default_conversation_id(self, run_id: str) -> str | None:
        from pydantic_ai.durable_exec import conversation_id_from_run_id

        return conversation_id_from_run_id(run_id) if self.in_durable_context else None

    async def get_run_start_time(self, run_id: str) -> datetime | None:
        run = current_run()
        if run is None or not self.in_durable_context:
            return None

        async def started() -> datetime:
            return _now()

        # A resumed run counts its ``timeout=`` from when it first started.
        agent_key = _agent_key(run, run_id)
        scope = entered(run._execution.scope_under(agent_key)) if agent_key else nullcontext()
        with scope:
            return await durable_call(
                _start_time(f"{self.name}__run_start_time"),
                started,
                digest=input_hash(None),
                run=run,
            )


def _agent_key(run: AnyRunContext | None, agent_run_id: str | None) -> str | None:
    """The key of an agent run, from the run id ``get_default_run_id`` gave it."""
    if run is None or agent_run_id is None:
        return None
    prefix = f"{run.run_id}:"
    return agent_run_id[len(prefix) :] if agent_run_id.startswith(prefix) else None


def _start_time(name: str) -> Operation[datetime]:
    return Operation(name, dump=datetime.isoformat, load=datetime.fromisoformat)
