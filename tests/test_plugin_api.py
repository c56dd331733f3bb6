"""The engine's face for integration plugins: one durable operation, called from sync or async
framework code, whichever API runs the workflow; streamed operations, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

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


class Overloaded(Exception):
    """A provider's error mid-stream: an outcome the workflow falls back on."""


class Crash(Exception):
    """The workflow failing after the streams (their work stays checkpointed)."""


END = "<end>"  # the event that completes a stream

STREAM = plugin.Operation(
    "llm.stream",
    usage=lambda text: [plugin.Usage(model="m", input_tokens=10, output_tokens=len(text.split()))],
    errors=plugin.ErrorCodec(Overloaded),
)


class Words:
    """A streamed model call answering ``text`` word by word; ``fail_at`` raises ``Overloaded``
    before that word, once the words before it (and their usage) were reported."""

    def __init__(self, text: str, calls: list[str], fail_at: int | None = None) -> None:
        self.text, self.calls, self.fail_at, self.seen = text, calls, fail_at, list[str]()

    def events(self) -> Iterator[str]:
        self.calls.append(self.text)
        for n, word in enumerate(self.text.split()):
            if n == self.fail_at:
                raise Overloaded("503 mid-stream")
            self.seen.append(word)
            yield word
        yield END

    async def aevents(self) -> AsyncIterator[str]:
        for event in self.events():
            await asyncio.sleep(0)
            yield event

    def options(self) -> dict[str, Any]:
        return {
            "digest": plugin.input_hash(self.text),
            "result_of": lambda event: " ".join(self.seen) if event == END else None,
            "replay": lambda text: [*text.split(), END],
            "spent": lambda: [
                plugin.Usage(model="m", input_tokens=10, output_tokens=len(self.seen))
            ],
        }


def test_a_sync_stream_failing_midway_is_ledgered_once_and_its_failure_replays(
    tide: Tidebase,
) -> None:
    calls: list[str] = []

    def answer(text: str, fail_at: int | None = None) -> list[str]:
        words = Words(text, calls, fail_at)
        return [w for w in plugin.durable_stream_sync(STREAM, words.events, **words.options())]

    def wf(run: RunContext, input: None) -> list[str]:
        try:
            words = answer("tides follow the moon", fail_at=2)
        except Overloaded:
            words = answer("the backup answer")
        if run.attempt == 1:
            raise Crash(words)
        return words

    with pytest.raises(Crash):
        tide.run("wf", wf, run_id="stream-fails")
    assert tide.run("wf", wf, run_id="stream-fails") == ["the", "backup", "answer", END]
    assert calls == ["tides follow the moon", "the backup answer"], "nothing streamed again"
    ledger = [(r.step_name, r.output_tokens) for r in tide.usage.records("stream-fails")]
    assert ledger == [("llm.stream", 2), ("llm.stream#2", 3)], "2 words spent before the 503"


async def test_an_async_stream_failing_midway_is_ledgered_once_and_its_failure_replays(
    atide: AsyncTidebase,
) -> None:
    calls: list[str] = []

    async def answer(text: str, fail_at: int | None = None) -> list[str]:
        words = Words(text, calls, fail_at)
        return [w async for w in plugin.durable_stream(STREAM, words.aevents, **words.options())]

    async def wf(run: AsyncRunContext, input: None) -> list[str]:
        try:
            words = await answer("tides follow the moon", fail_at=2)
        except Overloaded:
            words = await answer("the backup answer")
        if run.attempt == 1:
            raise Crash(words)
        return words

    with pytest.raises(Crash):
        await atide.run("wf", wf, run_id="astream-fails")
    assert await atide.run("wf", wf, run_id="astream-fails") == ["the", "backup", "answer", END]
    assert calls == ["tides follow the moon", "the backup answer"], "nothing streamed again"
    records = await atide.usage.records("astream-fails")
    assert [(r.step_name, r.output_tokens) for r in records] == [
        ("llm.stream", 2),
        ("llm.stream#2", 3),
    ], "2 words spent before the 503"


async def test_a_sync_stream_in_an_async_run_is_checkpointed_and_replays(
    atide: AsyncTidebase,
) -> None:
    calls: list[str] = []

    async def wf(run: AsyncRunContext, input: None) -> list[str]:
        # A framework's sync stream() inside an async workflow: written through a sync view.
        words = Words("tides follow the moon", calls)
        streamed = list(plugin.durable_stream_sync(STREAM, words.events, **words.options()))
        if run.attempt == 1:
            raise Crash(streamed)
        return streamed

    with pytest.raises(Crash):
        await atide.run("wf", wf, run_id="sync-stream-in-async")
    replayed = await atide.run("wf", wf, run_id="sync-stream-in-async")
    assert replayed == ["tides", "follow", "the", "moon", END]
    assert calls == ["tides follow the moon"], "replayed without streaming again"
    rows = await atide.usage.records("sync-stream-in-async")
    assert [(r.step_name, r.output_tokens) for r in rows] == [("llm.stream", 4)]


class Dropped(Exception):
    """A connection dropped mid-call, after the call had used ``tokens``: not an outcome."""

    def __init__(self, tokens: int) -> None:
        super().__init__(tokens)
        self.tokens = tokens


PARTIAL = plugin.Operation(
    "llm.partial",
    usage=lambda text: [plugin.Usage(model="m", input_tokens=10, output_tokens=len(text))],
    spent=lambda exc: (
        [plugin.Usage(model="m", input_tokens=10, output_tokens=exc.tokens)]
        if isinstance(exc, Dropped)
        else []
    ),
)


def dropped_after(tokens: int) -> str:
    raise Dropped(tokens)


async def test_a_failed_call_that_is_no_outcome_still_has_what_it_used_in_the_ledger(
    atide: AsyncTidebase, tide: Tidebase
) -> None:
    def swf(run: RunContext, input: None) -> str:
        return plugin.durable_call_sync(
            PARTIAL, lambda: dropped_after(4), digest=plugin.input_hash("sync")
        )

    async def dropped() -> str:
        return dropped_after(6)

    async def awf(run: AsyncRunContext, input: None) -> str:
        return await plugin.durable_call(PARTIAL, dropped, digest=plugin.input_hash("async"))

    with pytest.raises(Dropped):
        await asyncio.to_thread(tide.run, "swf", swf, run_id="partial-sync")
    with pytest.raises(Dropped):
        await atide.run("awf", awf, run_id="partial-async")
    for run_id, tokens in (("partial-sync", 4), ("partial-async", 6)):
        rows = await atide.usage.records(run_id)
        assert [(r.step_name, r.output_tokens) for r in rows] == [("llm.partial", tokens)]
        assert [s.name for s in await atide.runs.steps(run_id) if s.output] == [], "no checkpoint"


TOOL = plugin.Operation("tool.search")


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_log_entries_are_written_with_the_checkpoint_once_and_only_after_success(
    atide: AsyncTidebase, tide: Tidebase, api: str
) -> None:
    """``durable_call(log=...)``: the call's "ended" entries share its checkpoint's statement
    (the seqs just before it, after its usage entries); a replay writes none, nor a call that
    failed."""
    calls: list[str] = []

    def ended(result: str) -> list[tuple[str, Any]]:
        return [("tool.ended", {"result": result})]

    def search(query: str) -> str:
        calls.append(query)
        if query == "boom":
            raise RuntimeError("search is down")
        return f"found {query}"

    async def awf(run: AsyncRunContext, input: None) -> str:
        async def call() -> str:
            return search(input)

        return await plugin.durable_call(TOOL, call, digest=plugin.input_hash(input), log=ended)

    def wf(run: RunContext, input: None) -> str:
        return plugin.durable_call_sync(
            TOOL, lambda: search(input), digest=plugin.input_hash(input), log=ended
        )

    async def run(run_id: str, query: str) -> str:
        if api == "async":
            return await atide.run("wf", awf, run_id=run_id, input=query)
        return await asyncio.to_thread(tide.run, "wf", wf, run_id=run_id, input=query)

    assert await run(f"log-{api}", "cats") == "found cats"
    assert await run(f"log-{api}", "cats") == "found cats"  # replayed
    assert calls == ["cats"]
    events = await atide.runs.events(f"log-{api}")
    (step,) = await atide.runs.steps(f"log-{api}")
    (entry,) = [e for e in events if e.type == "tool.ended"]
    assert (entry.seq, entry.payload) == (step.seq - 1, {"result": "found cats"})

    with pytest.raises(RuntimeError):
        await run(f"log-{api}-failed", "boom")
    assert "tool.ended" not in [e.type for e in await atide.runs.events(f"log-{api}-failed")]
