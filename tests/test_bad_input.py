"""Bad input gets a clear error naming the thing and the fix, and leaves nothing half-written."""

from __future__ import annotations

import psycopg
import pytest

from tidebase import RunContext, Tidebase
from tidebase.errors import (
    ConfigurationError,
    DatabaseUnavailable,
    InvalidName,
    NotSerializable,
    RunNotFound,
)


def one_step(run: RunContext, input: object) -> object:
    return run.step("s", lambda: input, input=input)


def row_counts(tide: Tidebase) -> tuple[int, int, int]:
    schema = tide.settings.schema
    with psycopg.connect(tide._store.url) as conn:  # type: ignore[arg-type]
        return tuple(  # type: ignore[return-value]
            conn.execute(f'SELECT count(*) FROM "{schema}".{t}').fetchone()[0]  # type: ignore[index]
            for t in ("runs", "steps", "events")
        )


@pytest.mark.parametrize(
    "run_id",
    [
        'it\'s "quoted"; DROP TABLE runs; --',
        "ünïcødé 🚀 名前",
        "x" * 255,
        " leading and trailing ",
        "back\\slash and %s and %(x)s",
    ],
)
def test_odd_run_ids_work(tide: Tidebase, run_id: str) -> None:
    assert tide.run("wf", one_step, run_id=run_id, input={"a": 1}) == {"a": 1}
    assert tide.runs.get(run_id).run_id == run_id
    assert [s.name for s in tide.runs.steps(run_id)] == ["s"]


@pytest.mark.parametrize(
    ("run_id", "error", "message"),
    [
        ("x" * 10_000, InvalidName, "run_id is 10000 bytes long"),
        ("é" * 200, InvalidName, "limit is 255"),
        ("", InvalidName, "must not be empty"),
        ("nul\x00byte", InvalidName, "NUL"),
        (123, TypeError, "run_id must be a str, got int"),
        (None, None, None),  # None means: generate one
    ],
)
def test_bad_run_ids_fail_clearly_and_write_nothing(
    tide: Tidebase, run_id: object, error: type[Exception] | None, message: str | None
) -> None:
    if error is None:
        assert tide.run("wf", one_step, run_id=run_id, input=1) == 1  # type: ignore[arg-type]
        assert row_counts(tide)[0] == 1
        return
    with pytest.raises(error, match=message):
        tide.run("wf", one_step, run_id=run_id)  # type: ignore[arg-type]
    assert row_counts(tide) == (0, 0, 0)


def test_odd_and_huge_names(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> str:
        return run.step("ステップ 'one' \"two\"", lambda: "ok")

    assert tide.run("ワークフロー; DROP", wf, run_id="n1") == "ok"
    with pytest.raises(InvalidName, match="workflow name is 10000 bytes"):
        tide.run("w" * 10_000, wf, run_id="n2")
    assert row_counts(tide)[0] == 1


def test_a_10_mb_input_and_output_round_trip(tide: Tidebase) -> None:
    big = {"text": "x" * 10_000_000, "items": list(range(1000))}
    assert tide.run("wf", one_step, run_id="big", input=big) == big
    assert tide.runs.get("big").input == big
    assert tide.run("wf", one_step, run_id="big", input=big) == big  # and replays


@pytest.mark.parametrize("value", [None, 0, "", [], {}, False])
def test_empty_and_falsy_inputs_are_inputs(tide: Tidebase, value: object) -> None:
    assert tide.run("wf", one_step, run_id="f", input=value) == value
    assert tide.run("wf", one_step, run_id="f", input=value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "nan is not a JSON number"),
        ({"deep": [1, {"x": float("-inf")}]}, r"\['deep'\]\[1\]\['x'\]: -inf"),
        ({"conn": object()}, r"input of run 'r' is not JSON-serializable at \['conn'\]"),
        ({"s": "a\x00b"}, "NUL"),
    ],
)
def test_unserializable_run_input_fails_before_anything_is_written(
    tide: Tidebase, value: object, message: str
) -> None:
    with pytest.raises(NotSerializable, match=message):
        tide.run("wf", one_step, run_id="r", input=value)
    assert row_counts(tide) == (0, 0, 0)


def test_unserializable_step_input_and_result(tide: Tidebase) -> None:
    def bad_step_input(run: RunContext, input: None) -> None:
        run.step("s", lambda: 1, input={"f": lambda: 0})

    with pytest.raises(
        NotSerializable, match=r"input of step 's' is not JSON-serializable at \['f'\]"
    ):
        tide.run("wf", bad_step_input, run_id="a")
    assert tide.runs.steps("a") == []

    def bad_result(run: RunContext, input: None) -> object:
        run.step("s", lambda: 1)
        return {1, object()}

    with pytest.raises(NotSerializable, match="result of run 'b'"):
        tide.run("wf", bad_result, run_id="b")
    run = tide.runs.get("b")
    assert run.status == "failed" and run.result is None
    assert run.error is not None and run.error["type"] == "NotSerializable"


def test_wrong_types_of_arguments(tide: Tidebase) -> None:
    with pytest.raises(TypeError, match="fn must be callable"):
        tide.run("wf", "not a function", run_id="t")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="metadata must be a dict"):
        tide.run("wf", one_step, run_id="t", metadata=["a"])  # type: ignore[arg-type]

    def wf(**options: object):
        def run_it(run: RunContext, input: None) -> None:
            run.step("s", lambda: 1, **options)  # type: ignore[arg-type]

        return run_it

    with pytest.raises(TypeError, match="side_effects must be a list of strings"):
        tide.run("wf", wf(side_effects="email"), run_id="t1")
    with pytest.raises(TypeError, match="retries must be an int >= 0"):
        tide.run("wf", wf(retries=-1), run_id="t2")
    with pytest.raises(ValueError, match="replay must be one of"):
        tide.run("wf", wf(replay="sometimes"), run_id="t3")
    with pytest.raises(TypeError, match="idempotency_key must be a string"):
        tide.run("wf", wf(idempotency_key=5), run_id="t4")
    for run_id in ("t1", "t2", "t3", "t4"):
        assert tide.runs.steps(run_id) == []


def test_unknown_run_ids(tide: Tidebase) -> None:
    with pytest.raises(RunNotFound, match="no run with id 'missing'"):
        tide.runs.get("missing")
    with pytest.raises(RunNotFound):
        tide.runs.retry_step("missing", "s")


def test_bad_client_options_name_the_option() -> None:
    with pytest.raises(ConfigurationError, match="lease_seconds must be a number > 0"):
        Tidebase("postgresql://x/y", lease_seconds=0)
    with pytest.raises(ConfigurationError, match="schema must be a Postgres identifier"):
        Tidebase("postgresql://x/y", schema="bad-name; drop")
    with pytest.raises(ConfigurationError, match="database_url must be a non-empty"):
        Tidebase("  ")
    with pytest.raises(ConfigurationError, match="max_connections"):
        Tidebase("postgresql://x/y", max_connections=0)


def test_a_missing_database_is_a_clear_error(tidebase_database_url: str) -> None:
    missing = tidebase_database_url.replace("/tidebase_test", "/no_such_database_", 1)
    if missing == tidebase_database_url:
        missing = "postgresql://postgres@127.0.0.1:1/nowhere"
    tide = Tidebase(missing, schema="s")
    with pytest.raises(
        DatabaseUnavailable, match=r"could not connect to Postgres .*TIDEBASE_DATABASE_URL"
    ):
        tide.run("wf", one_step, run_id="r")
    tide.close()
    nowhere = Tidebase("postgresql://postgres:secret@127.0.0.1:1/nowhere", schema="s")
    with pytest.raises(DatabaseUnavailable) as info:
        nowhere.runs.get("r")
    assert "secret" not in str(info.value) and "***" in str(info.value)
