"""What the CLI and MCP tests share: workflows, a thread running one, waiting on conditions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tidebase import RunContext, Tidebase


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def approval_flow(run: RunContext, input: Any) -> str:
    """Plans, waits at gate 'ship' (blocking), then ships or not."""
    plan = run.step("plan", lambda: {"items": 3}, input=input)
    decision = run.gate("ship", "Ship it?", data={"plan": plan})
    if not decision.approved:
        return f"not shipped ({decision.actor})"
    run.step("ship", lambda: "ok")
    return f"shipped by {decision.actor}"


def parking_flow(run: RunContext, input: Any) -> str:
    """Plans, then waits at gate 'ship' without blocking (the run parks as waiting)."""
    run.step("plan", lambda: "p")
    decision = run.gate("ship", "Ship it?", wait=False)
    return f"shipped by {decision.actor}"


def in_thread(
    tide: Tidebase, fn: Callable[..., Any], run_id: str
) -> tuple[threading.Thread, list[Any]]:
    outcome: list[Any] = []

    def go() -> None:
        try:
            outcome.append(tide.run(fn.__name__, fn, run_id=run_id, input={"n": 1}))
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, outcome


def gate_pending(tide: Tidebase, run_id: str, name: str = "ship") -> bool:
    return any(g.name == name for g in tide.gates.list(status="pending", run_id=run_id))
