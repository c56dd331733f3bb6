"""Request digests: a history passed in is hashed once per message object, and still sees a
message that changed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, UserPromptPart
from tidebase_pydantic_ai import digests
from tidebase_pydantic_ai.digests import request_digest


def _history() -> list[Any]:
    return [ModelRequest(parts=[UserPromptPart("q")]), ModelResponse(parts=[TextPart("a")])]


def test_a_history_is_hashed_once_per_message_object(monkeypatch: pytest.MonkeyPatch) -> None:
    history = _history()
    first = request_digest("gpt-4o", history, None)
    hashed: list[Any] = []
    normalize = digests.normalized_json
    monkeypatch.setattr(
        digests,
        "normalized_json",
        lambda messages: hashed.append(messages) or normalize(messages),
    )
    assert request_digest("gpt-4o", history, None) == first
    assert hashed == []
    assert request_digest("gpt-4o", _history(), None) == first  # equal messages, new objects
    history[1].parts.append(TextPart("more"))
    assert request_digest("gpt-4o", history, None) != first
    history = _history()
    assert request_digest("gpt-4o", history, None) == first  # hashed, and kept
    history[0].parts[0].content = "another question"
    assert request_digest("gpt-4o", history, None) != first


def _conversation() -> list[Any]:
    """A message of each kind, with the parts and contents whose JSON needs a look (bytes,
    files, images, tool results with files, native tool parts)."""
    from pydantic_ai.messages import (
        BinaryContent,
        FilePart,
        ImageUrl,
        NativeToolCallPart,
        NativeToolReturnPart,
        SystemPromptPart,
        ThinkingPart,
        ToolCallPart,
        ToolReturnPart,
    )
    from pydantic_ai.usage import RequestUsage

    image = BinaryContent(b"\x00\x01png", media_type="image/png")
    return [
        ModelRequest(
            parts=[SystemPromptPart("sys"), UserPromptPart(["look", ImageUrl("https://x/y.png")])],
            instructions="be brief",
        ),
        ModelResponse(
            parts=[
                TextPart("t"),
                ThinkingPart("th", signature="s"),
                ToolCallPart("lookup", {"n": 1}, tool_call_id="c1"),
                FilePart(image),
            ],
            usage=RequestUsage(input_tokens=3, output_tokens=4),
            model_name="m",
            provider_details={"a": 1},
            finish_reason="stop",
        ),
        ModelRequest(
            parts=[
                ToolReturnPart("lookup", {"x": [1, 2]}, tool_call_id="c1"),
                ToolReturnPart("lookup", ["x", image], tool_call_id="c2"),
            ]
        ),
        ModelResponse(
            parts=[
                NativeToolCallPart("web_search", {"q": "x"}, tool_call_id="b1"),
                NativeToolReturnPart("web_search", {"r": 1}, tool_call_id="b1"),
            ]
        ),
    ]


def test_a_request_is_hashed_as_the_frameworks_own_json_of_its_messages() -> None:
    """Written by type inference (no schema to build), the JSON hashed is the framework's
    own, less the volatile fields: every field of every kind of message counts."""
    import json

    from pydantic_ai.messages import ModelMessagesTypeAdapter

    for message in _conversation():
        own = ModelMessagesTypeAdapter.dump_json([message], exclude=digests._EXCLUDE)
        assert json.loads(digests.normalized_json([message])) == json.loads(own)
        assert b'"timestamp"' not in digests.normalized_json([message])


_FRESH = """
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest, UserPromptPart
from pydantic._internal._mock_val_ser import MockValSer
from tidebase_pydantic_ai.digests import request_digest

request_digest("gpt-4o", [ModelRequest(parts=[UserPromptPart("q")])], None)
print(isinstance(ModelMessagesTypeAdapter.serializer, MockValSer))
"""


def test_hashing_a_request_builds_no_schema() -> None:
    """A fresh process (every resume) does not pay for building the messages' schema (0.1 s
    here) to hash its first request."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _FRESH], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
