"""Tidebase for LangChain: durable model calls, tool calls and agents, and a usage ledger.

    import tidebase_langchain

    tidebase_langchain.install()  # once, at startup

    @tidebase.workflow
    def research(question: str) -> str:
        model = ChatOpenAI(model="gpt-4o-mini").bind_tools(tools)
        ...  # every model call replays from its checkpoint when the run resumes

- ``install()``: every chat-model call (``invoke``/``batch``/``generate``/``stream`` …) of the
  active run is a durable call, replayed when an earlier attempt completed it; with
  ``events=True``, a ``TidebaseCallbackHandler`` on every LangChain call as well.
- ``durable_tools([...])`` / ``durable_tool(tool, side_effects=…, idempotency_key=…)``: tools
  whose calls are steps.
- ``TidebaseMiddleware()``: the same for ``langchain.agents.create_agent`` (needs ``langchain``).
- ``TidebaseCallbackHandler``: usage of real model calls, run events for models, tools, chains.
- ``turn_config(run, graph, config)`` / ``aturn_config``: one run per turn of a LangGraph
  thread with a checkpointer; a resumed turn starts again where the turn began.

Outside a run everything here does nothing. See docs/integrations/langchain.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .callbacks import TidebaseCallbackHandler
from .install import install
from .tools import DurableTool, durable_tool, durable_tools
from .turns import aturn_config, turn_config

if TYPE_CHECKING:
    from .middleware import TidebaseMiddleware

__all__ = [
    "DurableTool",
    "TidebaseCallbackHandler",
    "TidebaseMiddleware",
    "aturn_config",
    "durable_tool",
    "durable_tools",
    "install",
    "turn_config",
]


def __getattr__(name: str) -> Any:
    # The middleware needs the `langchain` package, which the plugin does not require.
    if name == "TidebaseMiddleware":
        try:
            from .middleware import TidebaseMiddleware
        except ImportError as exc:
            if not (exc.name or "").startswith(("langchain", "langgraph")):
                raise
            raise ImportError(
                "TidebaseMiddleware needs LangChain's agents (the `langchain` package): "
                f"pip install langchain ({exc})"
            ) from exc
        return TidebaseMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
