"""The real OpenAI client path: ``OpenAIChatModel`` and the ``openai`` client over HTTP,
replayed from a hand-written cassette. The ledger's token counts come from the HTTP bodies."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic_ai import Agent
from tidebase_pydantic_ai import TidebaseDurability

from tidebase.aio import AsyncRunContext, AsyncTidebase

vcr = pytest.importorskip("vcr", reason="needs vcrpy")
pytest.importorskip("openai", reason="needs openai")

from pydantic_ai.models.openai import OpenAIChatModel  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402

CASSETTE = Path(__file__).parents[2] / "cassettes" / "pydantic_ai" / "openai_chat_tool_call.yaml"


async def test_usage_of_real_openai_requests_is_read_from_their_responses(
    atide: AsyncTidebase,
) -> None:
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(api_key="sk-test-not-used"))
    agent = Agent(model, name="oncall", capabilities=[TidebaseDurability()])
    ran: Counter[str] = Counter()

    @agent.tool_plain
    def search_logs(service: str) -> str:
        ran["search_logs"] += 1
        return f"{service}: 42 errors since 14:02"

    async def workflow(run: AsyncRunContext, input: None) -> str:
        result = await agent.run("Is billing healthy?")
        if run.attempt == 1:
            raise RuntimeError("crash after the agent finished")
        return result.output

    with vcr.use_cassette(str(CASSETTE), record_mode="none") as cassette:
        with pytest.raises(RuntimeError):
            await atide.run("oncall", workflow, run_id="pai-openai")
        assert cassette.play_count == 2
        # Resumed: no HTTP request (one more would find no recorded answer and fail).
        output = await atide.run("oncall", workflow, run_id="pai-openai")
        assert cassette.play_count == 2

    assert output == "billing has 42 errors since 14:02; filing it as a sev-2."
    assert ran == {"search_logs": 1}
    rows = await atide.usage.records("pai-openai")
    assert [(r.provider, r.model, r.input_tokens, r.output_tokens) for r in rows] == [
        ("openai", "gpt-4o-2024-08-06", 82, 17),
        ("openai", "gpt-4o-2024-08-06", 131, 19),
    ]
    assert [r.metadata for r in rows] == [None, {"cache_read_tokens": 64}]
    # genai-prices for gpt-4o: $2.50 / $1.25 cached per million input tokens, $10 output.
    assert [r.cost_usd for r in rows] == [
        Decimal("0.000375"),  # 82 × 2.50 + 17 × 10, per million
        Decimal("0.0004375"),  # (131 - 64) × 2.50 + 64 × 1.25 + 19 × 10, per million
    ]
