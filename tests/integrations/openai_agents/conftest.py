"""The Agents SDK plugin's tests need its extra (``tidebase[openai-agents]``); skipped without it.

Nothing here may reach a provider: tracing export is off, and the only OpenAI client traffic is
replayed from cassettes with ``record_mode="none"``.
"""

import os

import pytest

pytest.importorskip("agents", reason="needs tidebase[openai-agents]")

from agents import set_tracing_disabled

os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"  # for worker subprocesses too
set_tracing_disabled(True)
