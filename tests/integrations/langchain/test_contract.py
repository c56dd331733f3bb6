"""The plugin contract (``tests/integrations/test_plugin_contract.py``) run against LangChain:
``create_agent`` with ``TidebaseMiddleware``, a scripted chat model and two async tools.

The contract's tests are imported as they are; only the ``plugin`` fixture is LangChain's.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from tidebase.aio import AsyncRunContext

from ..test_plugin_contract import (
    Hooks,
    test_a_budget_stops_the_agent_within_one_model_call_of_its_cap,
    test_a_cancel_stops_the_run_before_the_next_model_call,
    test_a_changed_prompt_raises_input_mismatch_before_the_model_is_asked,
    test_a_death_at_any_operation_resumes_without_repeating_completed_work,
    test_a_failed_model_call_replays_as_the_same_error_and_the_fallback_with_it,
    test_tool_calls_of_one_response_run_together_and_replay_their_own_results,
    test_usage_by_agent_matches_the_real_calls_of_each_agent,
)

pytest.importorskip("langchain.agents", reason="create_agent needs the langchain package")

__all__ = [
    "test_a_budget_stops_the_agent_within_one_model_call_of_its_cap",
    "test_a_cancel_stops_the_run_before_the_next_model_call",
    "test_a_changed_prompt_raises_input_mismatch_before_the_model_is_asked",
    "test_a_death_at_any_operation_resumes_without_repeating_completed_work",
    "test_a_failed_model_call_replays_as_the_same_error_and_the_fallback_with_it",
    "test_tool_calls_of_one_response_run_together_and_replay_their_own_results",
    "test_usage_by_agent_matches_the_real_calls_of_each_agent",
]


class Overloaded(Exception):
    """The provider's 503."""


def _turn(messages: list[BaseMessage]) -> int:
    return {0: 0, 2: 1, 3: 2}[sum(isinstance(m, ToolMessage) for m in messages)]


class ContractModel(BaseChatModel):
    """Asks for ``lookup`` a and b together, then ``file``, then answers with the results.

    The hooks run when ``ainvoke`` returns: LangChain's ``agenerate`` gathers its calls with
    ``return_exceptions=True`` and cannot pass a ``BaseException`` (the contract's "death")
    on, and under the middleware the call is checkpointed only after ``ainvoke``.
    """

    hooks: Any
    agent: str

    @property
    def _llm_type(self) -> str:
        return "contract"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("the contract is async")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        returns = [str(m.content) for m in messages if isinstance(m, ToolMessage)]
        turn = _turn(messages)
        if self.hooks.unavailable:
            self.hooks.ran[f"{self.agent}:503"] += 1
            raise Overloaded("overloaded")
        calls = [
            [{"name": "lookup", "args": {"arg": x}, "id": f"c_{x}"} for x in "ab"],
            [{"name": "file", "args": {"arg": "report"}, "id": "c_f"}],
            [],
        ][turn]
        message = AIMessage(
            " | ".join(returns) if turn == 2 else "",
            tool_calls=calls,
            usage_metadata={
                "input_tokens": 100 + turn,
                "output_tokens": 10 + turn,
                "total_tokens": 110 + 2 * turn,
            },
            response_metadata={"model_name": "gpt-4o", "model_provider": "openai"},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> AIMessage:
        message = await super().ainvoke(input, config, **kwargs)
        await self.hooks.model(_turn(self._convert_input(input).to_messages()))
        assert isinstance(message, AIMessage)
        return message

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


class LangChain:
    name = "langchain"
    provider_error: type[BaseException] = Overloaded

    async def ask(self, run: AsyncRunContext, hooks: Hooks, prompt: str, agent: str) -> str:
        from langchain.agents import create_agent
        from tidebase_langchain import TidebaseMiddleware

        @tool
        async def lookup(arg: str) -> str:
            """Look something up."""
            return await hooks.tool("lookup", arg)

        @tool
        async def file(arg: str) -> str:
            """File a report."""
            return await hooks.tool("file", arg)

        bot = create_agent(
            ContractModel(hooks=hooks, agent=agent),
            [lookup, file],
            middleware=[TidebaseMiddleware()],
            name=agent,
        )
        out = await bot.ainvoke({"messages": [HumanMessage(prompt)]})
        return str(out["messages"][-1].content)


def _names_agents() -> bool:
    """Does this langchain release name an agent's runs (``lc_agent_name``, for usage by
    agent)? 1.0.0 does not."""
    from langchain.agents import create_agent

    bot = create_agent(ContractModel(hooks=None, agent="probe"), [], name="probe")
    return "lc_agent_name" in ((bot.config or {}).get("metadata") or {})


@pytest.fixture
def plugin(request: pytest.FixtureRequest) -> LangChain:
    if "by_agent" in request.node.name and not _names_agents():
        pytest.skip("this langchain release does not name an agent's runs (lc_agent_name)")
    return LangChain()
