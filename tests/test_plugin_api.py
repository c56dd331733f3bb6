"""The engine's face for integration plugins: one durable operation, called from sync or async
framework code, whichever API runs the workflow."""

from __future__ import annotations

import asyncio

import pytest

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import InputMismatch
from tidebase_core import plugin

LLM = plugin.Operation(
    "llm",
    usage=lambda answer: [
        plugin.Usage(provider="openai", model="gpt-4o", input_tokens=10, output_tokens=2)
    ],
)


def llm_call(prompt: str, calls: list[str]) -> str:
    """A framework's sync model call, made durable by its plugin."""

    def call() -> str:
        calls.append(prompt)
        return prompt.upper()

    return plugin.durable_call_sync(LLM, call, digest=plugin.input_hash({"prompt": prompt}))


def test_sync_operations_in_a_sync_run_replay_and_catch_drift(tide: Tidebase) -> None:
    calls: list[str] = []
    prompts = ["hello", "world"]

    def wf(run: RunContext, input: None) -> list[str]:
        out = [llm_call(p, calls) for p in prompts]
        if run.attempt == 1:
            raise RuntimeError("crash")
        return out

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="p1")
    assert tide.run("wf", wf, run_id="p1") == ["HELLO", "WORLD"]
    assert calls == ["hello", "world"]
    assert [r.step_name for r in tide.usage.records("p1")] == ["llm", "llm#2"]

    def drift(run: RunContext, input: None) -> None:
        llm_call("a" if run.attempt == 1 else "b", calls)
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        tide.run("drift", drift, run_id="p2")
    with pytest.raises(InputMismatch):
        tide.run("drift", drift, run_id="p2")


async def test_a_sync_operation_in_an_async_run_and_an_async_one_in_a_sync_run(
    atide: AsyncTidebase, tide: Tidebase
) -> None:
    calls: list[str] = []

    async def awf(run: AsyncRunContext, input: None) -> str:
        return llm_call("from async", calls)  # a framework's sync callback in an async run

    assert await atide.run("awf", awf, run_id="p3") == "FROM ASYNC"
    assert [s.name for s in await atide.runs.steps("p3")] == ["llm"]

    async def body() -> str:
        calls.append("async body")
        await asyncio.sleep(0)
        return "done"

    def swf(run: RunContext, input: None) -> str:
        # an async framework driven from a sync workflow (its own event loop: run_sync)
        return asyncio.run(plugin.durable_call(LLM, body, digest=plugin.input_hash(None)))

    assert await asyncio.to_thread(tide.run, "swf", swf, run_id="p4") == "done"
    assert await asyncio.to_thread(tide.run, "swf", swf, run_id="p4") == "done"
    assert calls == ["from async", "async body"]
    assert len(tide.usage.records("p4")) == 1
