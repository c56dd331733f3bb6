"""Checkpoints of Pydantic AI values load as the framework's own codec loads its journal.

A tool result's files are recorded in its checkpoint (``content_file_digests``) by the
releases that record them; one checkpointed by a release that did not (2.62, the oldest this
plugin supports) must still give its files back as files after an upgrade, not plain dicts:
a replay that hands the model something else than the first execution did is a silent swap.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.durable_exec import _toolset as toolset
from pydantic_ai.messages import DocumentUrl, ToolReturnPart
from pydantic_ai.models.test import TestModel
from pydantic_ai.run import AgentRunResult
from tidebase_pydantic_ai.codec import JOURNAL_CONTEXT, TIDEBASE_CODEC
from tidebase_pydantic_ai.results import dump_result, load_result

records_files = pytest.mark.skipif(
    JOURNAL_CONTEXT is None, reason="this Pydantic AI release records no files"
)

FILE = DocumentUrl("s3://bucket/report.pdf")


def without_records(payload: Any) -> Any:
    """``payload`` as a release that recorded no files wrote it."""
    if isinstance(payload, dict):
        return {k: without_records(v) for k, v in payload.items() if k != "content_file_digests"}
    if isinstance(payload, list):
        return [without_records(item) for item in payload]
    return payload


async def returns_a_file() -> list[Any]:
    return ["see the attachment", FILE]


@records_files
def test_a_tool_result_checkpointed_before_files_were_recorded_replays_its_files_as_files() -> None:
    result = asyncio.run(toolset.wrap_tool_call_result(returns_a_file()))
    stored = TIDEBASE_CODEC.dump(toolset.CallToolResult, result)
    assert "content_file_digests" in stored

    for payload in (stored, without_records(stored)):
        loaded = toolset.unwrap_tool_call_result(
            TIDEBASE_CODEC.load(toolset.CallToolResult, payload)
        )
        assert loaded == ["see the attachment", FILE]
        assert isinstance(loaded[1], DocumentUrl)


@records_files
def test_a_whole_agent_run_checkpointed_before_files_were_recorded_replays_its_files() -> None:
    agent = Agent(TestModel(call_tools=["attachment"]))

    @agent.tool_plain
    def attachment() -> list[Any]:
        return ["see the attachment", FILE]

    result = agent.run_sync("summarise")
    stored = without_records(dump_result(result))

    replayed = load_result(stored, AgentRunResult[str])

    returns = [
        part
        for message in replayed.all_messages()
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    assert [part.content for part in returns] == [["see the attachment", FILE]]
    assert isinstance(returns[0].content[1], DocumentUrl)


_ADAPTERS_BUILT = """
import sys

import pydantic

built = []
build = pydantic.TypeAdapter.__init__


def counting(self, tp, *args, **kwargs):
    if sys._getframe(1).f_globals["__name__"].startswith("tidebase"):
        built.append(repr(tp))
    build(self, tp, *args, **kwargs)


pydantic.TypeAdapter.__init__ = counting

from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel
from pydantic_ai.run import AgentRunResult

import tidebase_pydantic_ai
from tidebase_pydantic_ai.results import dump_result, load_result

print(built)
stored = dump_result(Agent(TestModel()).run_sync("hello"))
before = len(built)
for _ in range(3):
    load_result(stored, AgentRunResult[str])
print(len(built) - before)
"""


def test_importing_the_plugin_builds_no_adapter_and_each_replayed_type_is_built_once() -> None:
    """An ``AgentRunResult`` adapter takes 0.1 s to build: not at import (every process that
    loads the plugin), and not at each replay of a checkpointed agent run."""
    done = subprocess.run(
        [sys.executable, "-c", _ADAPTERS_BUILT], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    at_import, per_three_loads = done.stdout.strip().splitlines()
    assert at_import == "[]"
    assert per_three_loads == "1"
