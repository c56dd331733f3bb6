"""Tidebase for Pydantic AI: durable agents, the run context in deps, usage in the ledger.

    from tidebase_pydantic_ai import TidebaseDurability, TidebaseDeps

    agent = Agent(model, name="triage", deps_type=Deps, capabilities=[TidebaseDurability()])

Inside a Tidebase run every model request and tool call of the agent is a checkpointed step,
and each model request that really executed writes its token usage with its checkpoint.
Importing this package also teaches Tidebase to store ``AgentRunResult`` (see ``results``).
"""

from .deps import TidebaseDeps, run_of
from .durability import TidebaseDurability
from .results import register

__all__ = ["TidebaseDeps", "TidebaseDurability", "run_of"]

register()
