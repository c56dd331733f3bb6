"""Request digests: items are hashed once by their exact JSON, normalized all the same."""

from __future__ import annotations

import copy
from typing import Any

from agents import ModelSettings
from tidebase_openai_agents.digests import model_request_digest


def _digest(items: list[Any]) -> str:
    return model_request_digest("gpt-4.1", None, items, ModelSettings(), [], None, [], {})


def test_a_request_digest_sees_every_item_whatever_was_hashed_before() -> None:
    items = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    first = _digest(items)
    assert _digest(copy.deepcopy(items)) == first
    # Normalized: key order, item ids and None fields do not count.
    assert _digest([{"content": "q", "role": "user"}, items[1]]) == first
    assert _digest([{"id": "m1", "name": None, **items[0]}, items[1]]) == first
    # Any changed or missing item does.
    assert _digest([items[0], {"role": "assistant", "content": "b"}]) != first
    assert _digest(items[:1]) != first
    assert _digest([*items, {"role": "user", "content": "go"}]) != first
