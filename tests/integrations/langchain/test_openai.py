"""The real OpenAI client path: ``ChatOpenAI`` over HTTP, replayed from a hand-written vcrpy
cassette (record_mode="none": a request the cassette does not hold fails, nothing leaves the
machine). A resumed run sends no request: its model calls replay from their checkpoints."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from tidebase_langchain import durable_tools

from tidebase import RunContext, Tidebase

from .conftest import Executions
from .scripted import research_tools, run_agent_loop
from .test_models import Interrupted, interrupt_first_attempt

vcr = pytest.importorskip("vcr", reason="the cassette tests need vcrpy")
openai = pytest.importorskip("langchain_openai", reason="needs langchain-openai")

CASSETTES = Path(__file__).resolve().parents[2] / "cassettes" / "langchain"


def test_chat_openai_calls_replay_and_their_usage_is_priced_once(
    tide: Tidebase, executions: Executions
) -> None:
    model = openai.ChatOpenAI(model="gpt-4o-mini", api_key="sk-test-not-a-key", max_retries=0)
    search = durable_tools(research_tools(executions.record))[:1]

    def ask(run: RunContext, _: None) -> list[str]:
        messages = run_agent_loop(model, search, "tides")
        interrupt_first_attempt(run)
        return [str(messages[-1].content), messages[1].tool_calls[0]["id"]]

    recorder = vcr.VCR(record_mode="none", match_on=["method", "uri"])
    with recorder.use_cassette(str(CASSETTES / "openai_tool_loop.yaml")) as cassette:
        with pytest.raises(Interrupted):
            tide.run("ask", ask, run_id="o1")
        answer, call_id = tide.run("ask", ask, run_id="o1")
        assert cassette.play_count == 2  # the resumed attempt sent nothing

    assert answer == "Tides are driven by the Moon's gravity (3 sources)."
    assert call_id == "call_Rn2tSearch" and executions == {"search": 1}
    records = tide.usage.records("o1")
    assert [(r.provider, r.model, r.input_tokens, r.output_tokens) for r in records] == [
        ("openai", "gpt-4o-mini-2024-07-18", 58, 15),
        ("openai", "gpt-4o-mini-2024-07-18", 96, 14),
    ]
    assert records[1].metadata == {"cache_read_tokens": 64, "reasoning_tokens": 0}
    assert all(r.cost_usd is not None and r.cost_usd > Decimal(0) for r in records)
