"""Guarantee 13: a run's recorded spend never passes its budget by more than the model calls in
flight, across crashes, attempts and child runs (DESIGN §9)."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tidebase import Budget, RunContext, Tidebase
from tidebase.aio import AsyncRunContext, AsyncTidebase
from tidebase.errors import BudgetExceeded, RunNotFound

CALL = Decimal("0.30")  # dollars per scripted model call
CAP = Decimal("1.00")


def agent_loop(calls: int = 10, cost: Decimal = CALL, agent: str = "researcher"):  # type: ignore[no-untyped-def]
    """A workflow whose agent makes ``calls`` model calls (3 × the cap by default), each a step
    declared spends=True that records its usage."""

    def wf(run: RunContext, input: Any) -> int:
        for i in range(calls):

            def call(i: int = i) -> int:
                run.usage.record(
                    provider="scripted",
                    model="m1",
                    input_tokens=100 + i,
                    output_tokens=10,
                    cost_usd=cost,
                    agent=agent,
                )
                return i

            run.step("call", call, spends=True)
        return calls

    return wf


def spend_of(tide: Tidebase, run_id: str, include_children: bool = False) -> Decimal:
    return tide.usage.summary(run_id, include_children=include_children).cost_usd


def test_a_loop_stops_within_one_call_of_its_cap(tide: Tidebase) -> None:
    with pytest.raises(BudgetExceeded) as raised:
        tide.run("agent", agent_loop(), run_id="b1", budget=Budget(usd=CAP))
    # checks before calls 1-4 saw 0, 0.3, 0.6, 0.9 < 1.0; before call 5 it saw 1.2
    assert spend_of(tide, "b1") == 4 * CALL
    assert spend_of(tide, "b1") < CAP + CALL
    err = raised.value
    assert err.holder == "b1" and err.step == "call#5" and err.caps == ["usd"]
    assert err.decision == "manual_review"
    assert "tide.runs.set_budget('b1'" in str(err) and "usd=1" in str(err)
    run = tide.runs.get("b1")
    assert run.status == "failed" and run.failure_class == "budget"
    assert run.budget == Budget(usd=CAP) and run.budget_run_id == "b1"
    assert run.spend is not None and run.spend.usd == 4 * CALL and run.spend.calls == 4
    assert [s.name for s in tide.runs.steps("b1")] == ["call", "call#2", "call#3", "call#4"]
    failed = tide.runs.events("b1")[-1]
    assert failed.type == "run.failed"
    assert failed.payload["failure_class"] == "budget"
    assert failed.payload["decision"] == "manual_review"
    assert failed.payload["step"] == "call#5"
