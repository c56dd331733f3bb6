"""Request digests: items are hashed once by their exact JSON, normalized all the same, and
along an agent run only the items a request adds."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from agents import ModelSettings
from hypothesis import given
from hypothesis import strategies as st
from tidebase_openai_agents import digests
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


def _chained(items: list[Any], chain: object) -> str:
    return model_request_digest("gpt-4.1", None, items, ModelSettings(), [], None, [], {}, chain)


class _AgentRun:
    """Stands in for an agent run's key scope: what a request's digest is chained along."""


def test_along_an_agent_run_a_request_hashes_only_the_items_added_since_the_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chain = _AgentRun()
    items: list[Any] = [{"role": "user", "content": f"q{i}"} for i in range(200)]
    assert _chained(items, chain) == _digest(items)
    hashed: list[Any] = []
    item_digest = digests._item_digest
    monkeypatch.setattr(digests, "_item_digest", lambda i: hashed.append(i) or item_digest(i))
    # The SDK sends the whole conversation again, as fresh copies, with the new items.
    items = [*copy.deepcopy(items), {"role": "assistant", "content": "a"}, {"type": "x"}]
    assert _chained(items, chain) == _digest(items[:])
    assert hashed[:2] == items[-2:] and len(hashed) == 2 + len(items)  # chained, then whole


@pytest.mark.parametrize(
    "edit",
    [
        lambda items: items[3].update(content="changed"),
        lambda items: items.pop(0),
        lambda items: items.insert(5, {"role": "user", "content": "inserted"}),
        lambda items: items.clear(),
    ],
)
def test_an_earlier_item_changed_along_an_agent_run_is_seen(edit: Any) -> None:
    """The chain only skips items equal to the ones hashed before: a conversation edited
    between two requests (an input filter, a trimmed session) is hashed whole again."""
    chain = _AgentRun()
    items: list[Any] = [{"role": "user", "content": f"q{i}"} for i in range(10)]
    _chained(items, chain)
    items = [*copy.deepcopy(items), {"role": "assistant", "content": "a"}]
    edit(items)
    assert _chained(items, chain) == _digest(items)


@given(
    st.lists(
        st.lists(
            st.dictionaries(st.sampled_from(["role", "content", "id"]), st.text()), max_size=4
        ),
        min_size=1,
        max_size=5,
    )
)
def test_a_chained_digest_is_the_digest_of_the_whole_conversation(turns: list[list[Any]]) -> None:
    chain = _AgentRun()
    items: list[Any] = []
    for added in turns:
        items = [*copy.deepcopy(items), *added]
        assert _chained(items, chain) == _digest(items)
