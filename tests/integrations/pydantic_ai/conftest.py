"""The Pydantic AI plugin's tests need its extra (``tidebase[pydantic-ai]``); skipped without it."""

import pytest

pytest.importorskip("pydantic_ai.durable_exec", reason="needs tidebase[pydantic-ai]")
