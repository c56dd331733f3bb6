"""Guarantee 7: usage recorded inside a step is in the ledger exactly once per real execution."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tidebase import RunContext, Tidebase

from .conftest import executions


@pytest.mark.slow
def test_a_crash_after_a_recorded_step_leaves_exactly_the_real_executions_in_the_ledger(
    spawn,
    tide: Tidebase,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    log = tmp_path / "executions.log"
    crashed = spawn("u1", log, SCENARIO="usage", BLOCK_AT="second")
    crashed.expect("IN second")
    crashed.kill()  # killed inside the second step, before it recorded anything

    resumed = spawn("u1", log, SCENARIO="usage")
    assert json.loads(resumed.finish().removeprefix("RESULT ")) == ["first done", "second done"]
    assert executions(log) == {"first": 1, "second": 2}

    rows = tide.usage.records("u1")
    assert [
        (r.label, r.step_name, r.attempt, r.input_tokens, r.output_tokens, r.total_tokens)
        for r in rows
    ] == [("first", "first", 1, 1000, 500, 1500), ("second", "second", 2, 3000, 1500, 4500)]
    assert all(r.cost_usd is not None and r.cost_source for r in rows)  # gpt-4o is priced
    assert rows[0].cost_usd == Decimal("0.0075")  # 1000 × $2.50/M in + 500 × $10/M out
    assert "genai-prices" in (rows[0].cost_source or "")

    summary = tide.usage.summary("u1")
    assert (summary.calls, summary.input_tokens, summary.output_tokens, summary.total_tokens) == (
        2,
        4000,
        2000,
        6000,
    )
    assert summary.cost_usd == sum((r.cost_usd for r in rows if r.cost_usd), Decimal(0))
    (by_model,) = summary.by_model
    assert (by_model.provider, by_model.model, by_model.calls) == ("openai", "gpt-4o", 2)

    # a completed run replayed records nothing more
    again = spawn("u1", log, SCENARIO="usage")
    assert again.finish().startswith("RESULT")
    assert len(tide.usage.records("u1")) == 2


def test_replayed_steps_record_nothing_and_totals_match_rows(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> str:
        def call() -> str:
            run.usage.record(
                provider="anthropic",
                model="claude-3-5-sonnet",
                input_tokens=100,
                output_tokens=10,
                metadata={"cache_read_tokens": 50},
            )
            return "answer"

        run.step("llm", call)
        run.usage.record(
            kind="embedding",
            provider="acme",
            model="acme-embed-1",
            input_tokens=7,
            cost_usd="0.0001",
        )  # outside a step, cost given
        if run.attempt == 1:
            raise RuntimeError("crash")
        return "ok"

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="u2")
    tide.run("wf", wf, run_id="u2")
    rows = tide.usage.records("u2")
    # the step's call ran once; the call outside any step really ran in both attempts
    assert [(r.kind, r.step_name, r.attempt) for r in rows] == [
        ("llm", "llm", 1),
        ("embedding", None, 1),
        ("embedding", None, 2),
    ]
    assert rows[1].cost_usd == Decimal("0.0001") and rows[1].cost_source == "given"
    assert rows[0].cost_source and rows[0].cost_source.startswith("genai-prices")

    summary = tide.usage.summary("u2")
    assert summary.total_tokens == sum(r.total_tokens or 0 for r in rows)
    assert summary.cost_usd == sum((r.cost_usd or Decimal(0) for r in rows), Decimal(0))
    assert {(m.provider, m.calls) for m in summary.by_model} == {("anthropic", 1), ("acme", 2)}
    assert tide.usage.summary(workflow="wf").calls == 3
    assert tide.usage.summary(workflow="other").calls == 0
    assert len([e for e in tide.runs.events("u2") if e.type == "usage.recorded"]) == 3


def test_unknown_models_keep_their_tokens_without_a_cost(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> None:
        run.usage.record(provider="nobody", model="no-such-model-9000", input_tokens=5)

    tide.run("wf", wf, run_id="u3")
    (row,) = tide.usage.records("u3")
    assert (row.total_tokens, row.cost_usd, row.cost_source) == (5, None, None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"input_tokens": -1}, "input_tokens must be an int >= 0"),
        ({"output_tokens": 1.5}, "output_tokens must be an int >= 0"),
        ({"cost_usd": "nan"}, "cost_usd must be a finite amount"),
        ({"cost_usd": -1}, "cost_usd must be a finite amount"),
        ({"kind": ""}, "usage kind must not be empty"),
        ({"metadata": [1]}, "metadata must be a dict"),
        ({"quantity": -2}, "quantity must be a finite amount >= 0"),
        ({"quantity": float("inf")}, "quantity must be a finite amount >= 0"),
        ({"quantity": True}, "quantity must be a finite amount >= 0"),
        ({"quantity": "three"}, "quantity must be a finite amount >= 0"),
        ({"quantity": 3, "unit": 7}, "usage unit must be a str or None"),
    ],
)
def test_bad_usage_fields_are_named_and_nothing_is_written(
    tide: Tidebase, fields: dict, message: str
) -> None:
    def wf(run: RunContext, input: None) -> None:
        run.usage.record(**fields)

    with pytest.raises((ValueError, TypeError), match=message):
        tide.run("wf", wf, run_id="bad")
    assert tide.usage.records("bad") == []


def test_a_model_calls_usage_is_written_with_its_checkpoint(tide: Tidebase) -> None:
    calls: list[int] = []

    def model_call() -> dict:
        calls.append(1)
        return {"text": "hi", "usage": {"in": 120, "out": 30}}

    def usage_of(response: dict) -> list[dict]:
        return [
            {
                "provider": "openai",
                "model": "gpt-4o",
                "input_tokens": response["usage"]["in"],
                "output_tokens": response["usage"]["out"],
                "metadata": {"id": "resp_1"},
            }
        ]

    def wf(run: RunContext, input: None) -> str:
        reply = run.step("llm", model_call, usage=usage_of)
        if run.attempt == 1:
            raise RuntimeError("crash")
        return str(reply["text"])

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="u4")
    assert tide.run("wf", wf, run_id="u4") == "hi"
    assert calls == [1]
    (row,) = tide.usage.records("u4")
    assert (row.step_name, row.attempt, row.input_tokens, row.total_tokens) == ("llm", 1, 120, 150)
    assert row.metadata == {"id": "resp_1"} and row.cost_usd is not None
    log = [(e.seq, e.type) for e in tide.runs.events("u4")]
    # the usage entry comes right before its step's checkpoint, in one write
    assert log[:3] == [(1, "run.started"), (2, "usage.recorded"), (3, "step.completed")]


def test_bad_usage_from_a_step_is_named_and_leaves_no_checkpoint(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> None:
        run.step("llm", lambda: 1, usage=lambda out: [{"tokens": 5}])

    with pytest.raises(TypeError, match=r"unknown usage fields \['tokens'\]"):
        tide.run("wf", wf, run_id="u5")
    assert tide.runs.steps("u5") == [] and tide.usage.records("u5") == []


def test_usage_that_is_not_tokens_is_a_quantity_of_a_unit(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> None:
        run.usage.record(kind="search", provider="serpapi", quantity=3, unit="queries")
        run.step(
            "fetch",
            lambda: "page",
            usage=lambda out: [{"kind": "bandwidth", "quantity": "1.5", "unit": "MB"}],
        )

    tide.run("wf", wf, run_id="u6")
    rows = tide.usage.records("u6")
    assert [(r.kind, r.quantity, r.unit, r.step_name) for r in rows] == [
        ("search", Decimal("3"), "queries", None),
        ("bandwidth", Decimal("1.5"), "MB", "fetch"),
    ]
    assert all(r.total_tokens is None and r.cost_usd is None for r in rows)
    logged = [e.payload for e in tide.runs.events("u6") if e.type == "usage.recorded"]
    assert [(p["quantity"], p["unit"]) for p in logged] == [("3", "queries"), ("1.5", "MB")]
