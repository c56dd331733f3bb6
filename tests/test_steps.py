"""Steps: checkpoint once, replay the checkpoint, refuse drifted input (guarantee 2)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from decimal import Decimal

import pydantic
import pytest

from tidebase import RunContext, Tidebase
from tidebase.errors import InputMismatch, InvalidName, NotSerializable


class Calls:
    """Counts real executions of step bodies."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, name: str, value: object = None):  # returns a step body
        def body() -> object:
            self.names.append(name)
            return value if value is not None else f"{name} out"

        return body


def test_completed_steps_replay_their_checkpoints_instead_of_executing(tide: Tidebase) -> None:
    calls = Calls()

    def wf(run: RunContext, input: dict) -> list:
        return [run.step("a", calls("a")), run.step("b", calls("b"), input=input)]

    assert tide.run("wf", wf, run_id="r", input={"x": 1}) == ["a out", "b out"]
    assert tide.run("wf", wf, run_id="r", input={"x": 1}) == ["a out", "b out"]
    assert calls.names == ["a", "b"]


def test_a_failed_run_resumes_at_the_first_incomplete_step(tide: Tidebase) -> None:
    calls = Calls()
    fail = {"b": True}

    def flaky() -> str:
        calls.names.append("b")
        if fail["b"]:
            raise RuntimeError("boom")
        return "b out"

    def wf(run: RunContext, input: None) -> list:
        return [run.step("a", calls("a")), run.step("b", flaky), run.step("c", calls("c"))]

    with pytest.raises(Exception, match="boom"):
        tide.run("wf", wf, run_id="r")
    failed = tide.runs.get("r")
    assert failed.status == "failed" and failed.attempt == 1
    assert failed.error is not None and failed.error["type"] == "RuntimeError"

    fail["b"] = False
    assert tide.run("wf", wf, run_id="r") == ["a out", "b out", "c out"]
    assert calls.names == ["a", "b", "b", "c"]
    assert tide.runs.get("r").attempt == 2


def test_repeated_step_names_get_sequence_keys(tide: Tidebase) -> None:
    calls = Calls()

    def wf(run: RunContext, input: None) -> list:
        return [run.step("fetch", calls(f"fetch{i}"), input=i) for i in range(3)]

    assert tide.run("wf", wf, run_id="r") == ["fetch0 out", "fetch1 out", "fetch2 out"]
    assert [s.name for s in tide.runs.steps("r")] == ["fetch", "fetch#2", "fetch#3"]
    assert tide.run("wf", wf, run_id="r") == ["fetch0 out", "fetch1 out", "fetch2 out"]
    assert len(calls.names) == 3


def test_changed_step_input_raises_input_mismatch_before_the_step_runs(tide: Tidebase) -> None:
    calls = Calls()
    topic = {"value": "tides"}

    def wf(run: RunContext, input: None) -> str:
        run.step("plan", calls("plan"), input={"topic": topic["value"]})
        out = run.step("write", calls("write"), input={"topic": topic["value"], "n": 1})
        if topic["value"] == "tides":
            raise RuntimeError("crash before the run completes")
        return out

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="r")
    topic["value"] = "waves"
    with pytest.raises(InputMismatch) as info:
        tide.run("wf", wf, run_id="r")
    assert calls.names == ["plan", "write"]  # nothing ran on the second invocation
    assert info.value.step == "plan"
    assert info.value.stored_hash != info.value.new_hash
    assert "plan" in str(info.value) and "new name" in str(info.value)


def test_input_hash_ignores_key_order(tide: Tidebase) -> None:
    calls = Calls()
    first = {"a": 1, "b": [1, 2], "c": {"x": None, "y": {3, 1, 2}}}
    same = {"c": {"y": {2, 3, 1}, "x": None}, "b": [1, 2], "a": 1}
    inputs = [first, same]

    def wf(run: RunContext, input: None) -> str:
        out = run.step("s", calls("s"), input=inputs.pop(0))
        if inputs:
            raise RuntimeError("crash before the run completes")
        return str(out)

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="r")
    tide.run("wf", wf, run_id="r")
    assert calls.names == ["s"]


class Plan(pydantic.BaseModel):
    topic: str
    steps: list[str]
    due: dt.date


@dataclasses.dataclass
class Page:
    url: str
    fetched: dt.datetime


class Color(enum.Enum):
    RED = "red"


def test_typed_replay_returns_the_same_values_and_types_as_a_fresh_execution(
    tide: Tidebase,
) -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    seen: list[dict[str, object]] = []

    def make_plan() -> Plan:  # typed by its annotation, no output_type needed
        return Plan(topic="tides", steps=["read", "write"], due=dt.date(2026, 2, 1))

    def wf(run: RunContext, input: None) -> str:
        seen.append(
            {
                "plan": run.step("plan", make_plan),
                "page": run.step("page", lambda: Page("https://x", when), output_type=Page),
                "when": run.step("when", lambda: when, output_type=dt.datetime),
                "id": run.step("id", lambda: ident, output_type=uuid.UUID),
                "color": run.step("color", lambda: Color.RED, output_type=Color),
                "blob": run.step("blob", lambda: b"\x00\xffbin", output_type=bytes),
                "money": run.step("money", lambda: Decimal("1.10"), output_type=Decimal),
                "pages": run.step("pages", lambda: [Page("a", when)], output_type=list[Page]),
                "pair": run.step("pair", lambda: (1, "a"), output_type=tuple[int, str]),
            }
        )
        if len(seen) == 1:
            raise RuntimeError("crash after the steps")
        return "done"

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="r")
    assert tide.run("wf", wf, run_id="r") == "done"
    fresh, replayed = seen
    assert replayed == fresh
    assert {k: type(v) for k, v in replayed.items()} == {k: type(v) for k, v in fresh.items()}


def test_a_completed_run_returns_its_stored_result_typed_by_the_annotation(tide: Tidebase) -> None:
    calls = Calls()

    def wf(run: RunContext, input: None) -> Plan:
        calls.names.append("wf")
        return Plan(topic="t", steps=[], due=dt.date(2026, 3, 1))

    first = tide.run("wf", wf, run_id="r")
    again = tide.run("wf", wf, run_id="r")
    assert again == first and isinstance(again, Plan)
    assert calls.names == ["wf"]


def test_without_a_type_replay_returns_plain_json_values(tide: Tidebase) -> None:
    seen: list[object] = []

    def wf(run: RunContext, input: None) -> None:
        seen.append(run.step("when", lambda: dt.date(2026, 1, 2)))
        if len(seen) == 1:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="r")
    tide.run("wf", wf, run_id="r")
    assert seen == [dt.date(2026, 1, 2), "2026-01-02"]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (object(), "builtins.object"),
        ({"ok": 1, "bad": [1, object()]}, "['bad'][1]"),
        (float("nan"), "nan"),
        ({"x": float("inf")}, "inf"),
        ("nul \x00 byte", "NUL"),
    ],
)
def test_unserializable_output_raises_at_that_step_and_leaves_no_checkpoint(
    tide: Tidebase, value: object, named: str
) -> None:
    def wf(run: RunContext, input: None) -> None:
        run.step("fine", lambda: 1)
        run.step("bad", lambda: value)

    with pytest.raises(NotSerializable, match="output of step 'bad'") as info:
        tide.run("wf", wf, run_id="r")
    assert named in str(info.value)
    assert [s.name for s in tide.runs.steps("r")] == ["fine"]


def test_step_names_are_validated(tide: Tidebase) -> None:
    def wf(name: object):
        def run_it(run: RunContext, input: None) -> None:
            run.step(name, lambda: 1)  # type: ignore[arg-type]

        return run_it

    with pytest.raises(TypeError, match="step name must be a str"):
        tide.run("wf", wf(42), run_id="r1")
    with pytest.raises(InvalidName, match="reserves"):
        tide.run("wf", wf("a#2"), run_id="r2")
    with pytest.raises(InvalidName, match="limit is 1000"):
        tide.run("wf", wf("x" * 10_000), run_id="r3")
    with pytest.raises(InvalidName, match="empty"):
        tide.run("wf", wf(""), run_id="r4")
    for run_id in ("r1", "r2", "r3", "r4"):
        assert tide.runs.steps(run_id) == []


def test_steps_inside_a_step_body_do_not_shift_the_keys_after_it(tide: Tidebase) -> None:
    calls = Calls()

    def wf(run: RunContext, input: None) -> list:
        def outer() -> str:
            return str(run.step("fetch", calls("inner fetch"), input="inner"))

        out = [run.step("process", outer), run.step("fetch", calls("fetch"), input="outer")]
        if run.attempt == 1:
            raise RuntimeError("crash")
        return out

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="nested")
    assert tide.run("wf", wf, run_id="nested") == ["inner fetch out", "fetch out"]
    assert calls.names == ["inner fetch", "fetch"]
    assert [s.name for s in tide.runs.steps("nested")] == ["process/fetch", "process", "fetch"]
