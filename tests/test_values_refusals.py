"""What cannot be stored is refused by encode and input_hash alike, naming the path inside the
value and the fix, and the check never consumes what it looks at."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import pytest

from tidebase import RunContext, Tidebase
from tidebase.errors import NotSerializable
from tidebase_core.serialization import encode, encode_with_hash, input_hash

BOTH: list[Callable[..., str]] = [encode, input_hash]


class Settings(pydantic.BaseModel):
    name: str
    api_key: pydantic.SecretStr


class Blob(pydantic.BaseModel):
    data: pydantic.SecretBytes


class Pin(pydantic.BaseModel):
    pin: pydantic.Secret[int]


class Holder(pydantic.BaseModel):
    anything: Any = None


@dataclasses.dataclass
class Node:
    name: str
    child: Any = None


def numbers() -> Iterator[int]:
    yield 1
    yield 2


@pytest.mark.parametrize("fn", BOTH)
@pytest.mark.parametrize(
    ("value", "path"),
    [
        (Settings(name="n", api_key=pydantic.SecretStr("sk-1")), r"\['api_key'\]"),
        ({"cfg": [Settings(name="n", api_key=pydantic.SecretStr("k"))]}, r"\['cfg'\]\[0\]"),
        (Blob(data=pydantic.SecretBytes(b"x")), r"\['data'\]"),
        (Pin(pin=pydantic.Secret[int](1234)), r"\['pin'\]"),
        ({"raw": pydantic.SecretStr("k")}, r"\['raw'\]"),
        (Node("n", Holder(anything=pydantic.SecretStr("k"))), r"\['child'\]\['anything'\]"),
    ],
)
def test_secrets_are_refused_not_stored_masked(
    fn: Callable[..., str], value: object, path: str
) -> None:
    with pytest.raises(NotSerializable, match=rf"output of step 's' cannot be stored at {path}"):
        fn(value, what="output of step 's'")
    with pytest.raises(NotSerializable, match=r"would be stored masked.*reference to the secret"):
        fn(value, what="output of step 's'")


def test_a_secret_field_serialized_on_purpose_is_stored() -> None:
    class Revealed(pydantic.BaseModel):
        token: pydantic.SecretStr

        @pydantic.field_serializer("token")
        def reveal(self, token: pydantic.SecretStr) -> str:
            return token.get_secret_value()

    assert encode(Revealed(token=pydantic.SecretStr("t"))) == '{"token":"t"}'


@pytest.mark.parametrize("fn", BOTH)
def test_generators_and_iterators_are_refused_and_left_unconsumed(fn: Callable[..., str]) -> None:
    for make, path in [
        (lambda gen: gen, ""),
        (lambda gen: {"items": gen}, r" at \['items'\]"),
        (lambda gen: [1, (2, gen)], r" at \[1\]\[1\]"),
        (lambda gen: Holder(anything=gen), r" at \['anything'\]"),
        (lambda gen: Node("n", [gen]), r" at \['child'\]\[0\]"),
        (
            lambda gen: {"n": Node("n", Holder(anything=gen))},
            r" at \['n'\]\['child'\]\['anything'\]",
        ),
    ]:
        gen = numbers()
        with pytest.raises(NotSerializable, match=rf"cannot be stored{path}: a .*generator"):
            fn(make(gen), what="output")
        assert list(gen) == [1, 2]  # the check did not consume it
    iterator = iter([1, 2])
    with pytest.raises(NotSerializable, match=r"list\(\.\.\.\)"):
        fn({"it": iterator}, what="output")
    assert list(iterator) == [1, 2]


@pytest.mark.parametrize("fn", BOTH)
def test_coroutines_and_async_generators_are_refused(fn: Callable[..., str]) -> None:
    async def answer() -> int:
        return 42

    async def ticks() -> Any:
        yield 1

    coroutine = answer()
    with pytest.raises(NotSerializable, match=r"coroutine.*awaited result"):
        fn({"pending": coroutine}, what="output")
    assert asyncio.run(coroutine) == 42  # still awaitable: the check did not run it
    with pytest.raises(NotSerializable, match="async_generator"):
        fn(ticks(), what="output")


@pytest.mark.parametrize("fn", BOTH)
def test_self_referencing_values_are_refused_with_the_path(fn: Callable[..., str]) -> None:
    looped: list[Any] = [1]
    looped.append(looped)
    with pytest.raises(NotSerializable, match=r"at \['a'\]\[1\]: the list contains itself"):
        fn({"a": looped}, what="output")
    mapping: dict[str, Any] = {}
    mapping["me"] = {"again": mapping}
    with pytest.raises(NotSerializable, match=r"at \['me'\]\['again'\]: the dict contains itself"):
        fn(mapping, what="output")
    node = Node("root")
    node.child = {"back": node}
    with pytest.raises(NotSerializable, match=r"at \['child'\]\['back'\]: the Node refers"):
        fn(node, what="output")
    holder = Holder()
    holder.anything = [holder]
    with pytest.raises(NotSerializable, match=r"at \['x'\]\['anything'\]\[0\]: the Holder refers"):
        fn({"x": holder}, what="output")


class Measured(pydantic.BaseModel):
    score: float
    note: str | None = None


class Sized(pydantic.BaseModel):
    sizes: set[int]
    ratio: float


@pytest.mark.parametrize("fn", BOTH)
def test_nan_in_a_model_float_field_is_refused_not_stored_as_null(fn: Callable[..., str]) -> None:
    # pydantic's JSON dump of a model writes NaN and ±inf as null: replay would get None.
    with pytest.raises(NotSerializable, match=r"at \['score'\]: nan is not a JSON number"):
        fn(Measured(score=float("nan")), what="output")
    with pytest.raises(NotSerializable, match=r"at \['m'\]\[1\]\['score'\]: -inf is not"):
        fn({"m": [Measured(score=1.0), Measured(score=float("-inf"))]}, what="output")
    with pytest.raises(NotSerializable, match=r"at \['ratio'\]: inf is not a JSON number"):
        fn(Sized(sizes={1}, ratio=float("inf")), what="output")
    # A null that is a None is fine.
    assert fn(Measured(score=0.5), what="output") == fn(Measured(score=0.5), what="output")


def test_shared_but_acyclic_references_are_fine() -> None:
    shared = [1, 2]
    assert encode({"a": shared, "b": shared}) == '{"a":[1,2],"b":[1,2]}'
    assert encode([Node("x", shared), Node("y", shared)]) == (
        '[{"name":"x","child":[1,2]},{"name":"y","child":[1,2]}]'
    )


def test_existing_refusals_name_the_path_in_models_and_sets_too() -> None:
    with pytest.raises(NotSerializable, match=r"at \['anything'\]\['x'\]: nan is not a JSON"):
        encode(Holder(anything={"x": float("nan")}))
    with pytest.raises(NotSerializable, match=r"at \['anything'\]: inf is not a JSON number"):
        input_hash(Holder(anything=float("inf")))
    with pytest.raises(NotSerializable, match=r"at \['s'\]\{member\}: the string contains a NUL"):
        encode({"s": {"a\x00"}})

    class Handle:
        pass

    with pytest.raises(NotSerializable, match=r"not JSON-serializable at \['child'\]: a .*Handle"):
        encode(Node("n", Handle()))
    with pytest.raises(NotSerializable, match=r"not JSON-serializable at \['h'\]\[0\]: a .*Handle"):
        encode_with_hash({"h": [Handle()]}, what="input")


@pytest.mark.parametrize("fn", BOTH)
def test_lone_surrogates_are_refused_in_values_and_keys(fn: Callable[..., str]) -> None:
    with pytest.raises(NotSerializable, match=r"at \['a'\]\[0\]: the string contains a lone"):
        fn({"a": ["\ud800"]}, what="output")
    with pytest.raises(NotSerializable, match=r"at \['x\\udc80'\]: the string contains a lone"):
        fn({"x\udc80": 1}, what="output")


def test_a_nul_character_in_a_key_is_refused_too() -> None:
    with pytest.raises(NotSerializable, match=r"at \['k\\x00'\]: the string contains a NUL"):
        encode({"k\x00": 1})


def test_a_nul_character_is_refused_for_storage_but_can_be_hashed() -> None:
    # Postgres cannot store it; a hash of it is only compared, never stored as text.
    with pytest.raises(NotSerializable, match="NUL"):
        encode({"s": "a\x00b"})
    assert input_hash({"s": "a\x00b"}) != input_hash({"s": "ab"})


def test_a_step_returning_a_secret_fails_at_that_step(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> None:
        run.step("load settings", lambda: Settings(name="n", api_key=pydantic.SecretStr("k")))

    with pytest.raises(NotSerializable, match=r"step 'load settings'.*\['api_key'\].*masked"):
        tide.run("wf", wf, run_id="secret")
    assert [s.status for s in tide.runs.steps("secret")] in ([], ["failed"])


def test_a_step_returning_a_generator_fails_at_that_step_and_the_generator_is_intact(
    tide: Tidebase,
) -> None:
    made: list[Iterator[int]] = []

    def make() -> Iterator[int]:
        made.append(numbers())
        return made[-1]

    def wf(run: RunContext, input: None) -> None:
        run.step("stream", make)

    with pytest.raises(NotSerializable, match=r"output of step 'stream'.*generator.*list\("):
        tide.run("wf", wf, run_id="gen")
    assert list(made[0]) == [1, 2]
