"""The queue examples, end to end, on the embedded default (no TIDEBASE_DATABASE_URL)."""

from __future__ import annotations

import pytest

from .test_examples import embedded_env, example

pytestmark = pytest.mark.slow

__all__ = ["embedded_env"]


def test_queue_worker_example(embedded_env: dict[str, str]) -> None:
    out, err = example("queue_worker.py", embedded_env).communicate(timeout=120)
    assert out.count("  completed  ") == 5, (out, err)
    assert "attempts=2" in out  # the flaky job was retried
    assert "retrying in" in err and "drained and stopped" in err


def test_recovery_webhook_example(embedded_env: dict[str, str]) -> None:
    out, err = example("recovery_webhook.py", embedded_env).communicate(timeout=120)
    assert out.count("executing draft") == 1, (out, err)  # replayed after the crash
    assert "webhook attempts: [('run.recover', 202)]" in out
    assert "result: sent a draft to ana" in out
