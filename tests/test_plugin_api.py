"""The engine's face for integration plugins: look up and store checkpoints from sync or async
code, whichever API runs the workflow."""

from __future__ import annotations

import asyncio

import pytest

from tidebase import RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import InputMismatch
from tidebase_core import plugin


def cached_call(run: plugin.AnyRunContext, prompt: str, calls: list[str]) -> str:
    """What an LLM cache does: look up, else call and store (with the call's usage)."""
    key = run.next_key("llm")
    digest = plugin.input_hash({"prompt": prompt})
    stored = run.checkpoint_of(key, digest)
    if stored is not None:
        return str(plugin.decode(stored))
    calls.append(prompt)
    answer = prompt.upper()
    plugin.save_checkpoint_sync(
        run,
        key,
        digest,
        answer,
        usage=[{"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 2}],
    )
    return answer


def test_split_lookup_and_store_in_a_sync_run(tide: Tidebase) -> None:
    calls: list[str] = []
    prompts = ["hello", "world"]

    def wf(run: RunContext, input: None) -> list[str]:
        out = [cached_call(run, p, calls) for p in prompts]
        if run.attempt == 1:
            raise RuntimeError("crash")
        return out

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="p1")
    assert tide.run("wf", wf, run_id="p1") == ["HELLO", "WORLD"]
    assert calls == ["hello", "world"]
    assert [r.step_name for r in tide.usage.records("p1")] == ["llm", "llm#2"]

    def drift(run: RunContext, input: None) -> None:
        cached_call(run, "a" if run.attempt == 1 else "b", calls)
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        tide.run("drift", drift, run_id="p2")
    with pytest.raises(InputMismatch):
        tide.run("drift", drift, run_id="p2")


async def test_sync_store_from_an_async_run_and_async_steps_in_a_sync_run(
    atide: AsyncTidebase, tide: Tidebase
) -> None:
    calls: list[str] = []

    async def awf(run: AsyncRunContext, input: None) -> str:
        return cached_call(run, "from async", calls)  # the sync path inside an async run

    assert await atide.run("awf", awf, run_id="p3") == "FROM ASYNC"
    assert [s.name for s in await atide.runs.steps("p3")] == ["llm"]

    async def body() -> str:
        calls.append("async body")
        await asyncio.sleep(0)
        return "done"

    def swf(run: RunContext, input: None) -> str:
        # an async framework driven from a sync workflow (its own event loop)
        return asyncio.run(
            plugin.run_async_step(run, run.next_key("agent"), body, digest=plugin.input_hash(None))
        )

    loop_free = await asyncio.to_thread(tide.run, "swf", swf, run_id="p4")
    assert loop_free == "done"
    assert await asyncio.to_thread(tide.run, "swf", swf, run_id="p4") == "done"
    assert calls == ["from async", "async body"]
