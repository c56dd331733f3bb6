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
