"""``TidebaseDurability``: a Pydantic AI capability that makes an agent's work steps of the run.

Built on Pydantic AI's public durable-execution builder API: the framework wraps model requests
(streamed ones included), tool calls and argument validation of function, MCP and dynamic
toolsets, event-stream handler calls and capability operations, and hands each one to
``TidebaseOperationBackend.execute`` as one durable unit, which is one ``run.step``.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic_ai.agent.abstract import AbstractAgent
from pydantic_ai.capabilities import AbstractCapability, WrapRunHandler
from pydantic_ai.durable_exec import (
    JSON_CODEC,
    BaseDurabilityCapability,
    DurabilityEngineSpec,
    RoleBasedOperationConfig,
)
from pydantic_ai.run import AgentRunResult
from pydantic_ai.tools import AgentDepsT, RunContext
from tidebase_core.plugin import current_run, current_step_key, input_hash, run_async_step

from .backend import TidebaseOperationBackend
from .deps import check_deps_run

__all__ = ["DEFAULT_AGENT_NAME", "TidebaseDurability"]

DEFAULT_AGENT_NAME = "agent"
"""Names the steps of an agent built without ``name=`` (``agent__model.request`` …)."""


def _now() -> datetime:
    return datetime.now(UTC)


class TidebaseDurability(BaseDurabilityCapability[AgentDepsT]):
    """Checkpoint every model request and tool call of the agent in the active Tidebase run.

    ``Agent(..., capabilities=[TidebaseDurability()])``, or per run
    ``agent.run(..., capabilities=[TidebaseDurability()])``. Outside a run, and inside the body
    of a step (which is checkpointed as a whole), it does nothing.
    """

    engine_spec: ClassVar[DurabilityEngineSpec] = DurabilityEngineSpec(
        engine_name="Tidebase",
        durable_unit_noun="step",
        durable_container_noun="run",
        # Steps store JSON: the framework reduces each result to JSON values inside the step.
        codec=JSON_CODEC,
        # Keys follow the order of occurrence, so tool calls of one response run one after the
        # other; parallel calls would take their keys in whatever order they got there.
        sequential_tools_in_durable_context=True,
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
        # Inside a step body the enclosing step is the unit of replay (``run.step("triage",
        # lambda: agent.run(...))``): checkpointing inside it too would shift later keys.
        return current_run() is not None and current_step_key() is None

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
        started_at: datetime = await run_async_step(
            run,
            run.next_key(f"{self.name}__run_start_time"),
            started,
            digest=input_hash(None),
            output_type=datetime,
        )
        return started_at
