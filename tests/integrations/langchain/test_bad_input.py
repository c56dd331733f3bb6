"""Bad input to the plugin is a clear error naming the thing and the fix."""

from __future__ import annotations

import pytest
from langchain_core.tools import tool
from tidebase_langchain import durable_tool, durable_tools

from .scripted import research_tools


def test_durable_tool_wants_a_langchain_tool() -> None:
    def search(query: str) -> str:
        return query

    with pytest.raises(TypeError, match=r"got 'search'; make it one with .*@tool"):
        durable_tool(search)  # type: ignore[type-var]


def test_durable_tools_wants_a_list() -> None:
    with pytest.raises(TypeError, match=r"takes a list of tools.*durable_tool\(tool\)"):
        durable_tools(research_tools()[0])  # type: ignore[arg-type]


def test_declarations_must_name_tools_in_the_list() -> None:
    with pytest.raises(ValueError, match=r"side_effects names \['sav'\].*\['search', 'save'\]"):
        durable_tools(research_tools(), side_effects={"sav": ["db"]})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"side_effects": "email"}, r"side_effects must be a list of strings such as \['email'\]"),
        ({"idempotency_key": 42}, r"idempotency_key must be a string or a function"),
        ({"replay": "sometimes"}, r"replay must be one of 'auto', 'manual', 'never'"),
    ],
)
def test_bad_declarations_fail_when_the_tool_is_made(options: dict, message: str) -> None:
    @tool
    def save(note: str) -> str:
        """Save a note."""
        return note

    with pytest.raises((TypeError, ValueError), match=message):
        durable_tool(save, **options)
