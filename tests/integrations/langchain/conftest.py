"""LangChain tests: no network, no tracing, the plugin installed once for the session.

Without langchain-core installed (the core test session) these tests are not collected; the
``langchain`` nox sessions install it.
"""

from __future__ import annotations

import importlib.util
import os
from collections import Counter

import pytest

# LangSmith would trace (and try to reach its server) if a developer's environment says so.
for _var in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING"):
    os.environ[_var] = "false"

if importlib.util.find_spec("langchain_core") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session", autouse=True)
def installed() -> None:
    import tidebase_langchain

    tidebase_langchain.install()


class Executions(Counter[str]):
    """What really executed (model calls, tool bodies), counted outside the database."""

    def record(self, what: str) -> None:
        self[what] += 1


@pytest.fixture
def executions() -> Executions:
    return Executions()
