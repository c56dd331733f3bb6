"""Tidebase for the OpenAI Agents SDK: agent runs that resume after a crash.

Inside a Tidebase run, every model call and every function-tool call becomes a step: it is
checkpointed when it completes, replayed instead of called again when the run is re-invoked,
and each real model call's tokens go to the run's usage ledger in the same write.

    from tidebase_openai_agents import run_agent

    async def support(run, question):
        result = await run_agent(run, triage_agent, question)   # drop-in for Runner.run
        return result.final_output

    await tide.run("support", support, run_id="ticket-1", input="Refund my order A1")

The pieces, for use with ``Runner`` directly: ``durable_run_config`` (the model provider),
``durable_agent`` (a durable copy of an agent graph), ``durable_tool``, ``TidebaseHooks``,
``DurableSession``, ``DurableModel``, ``DurableModelProvider``. Outside a run all of them are
no-ops. ``current_run()`` finds the run from inside a tool.
"""

from tidebase_core.plugin import current_run

from .config import durable_run_config
from .graph import durable_agent, is_durable_agent
from .hooks import TidebaseHooks
from .models import DurableModel, DurableModelProvider
from .runner import install_runner_hook, run_agent, run_agent_streamed
from .sessions import DurableSession
from .tools import durable_tool, is_durable_tool

__all__ = [
    "DurableModel",
    "DurableModelProvider",
    "DurableSession",
    "TidebaseHooks",
    "current_run",
    "durable_agent",
    "durable_run_config",
    "durable_tool",
    "is_durable_agent",
    "is_durable_tool",
    "run_agent",
    "run_agent_streamed",
]

install_runner_hook()
