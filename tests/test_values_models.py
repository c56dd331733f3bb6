"""Models and dataclasses: pydantic's own dump rules hold, replay validates back into the type,
and a type tag brings back the concrete class behind a union or base-class annotation."""

from __future__ import annotations

import dataclasses
import enum
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Optional
from uuid import UUID

import pydantic
import pydantic_core
import pytest

from tidebase_core.serialization import decode, encode, input_hash, type_tag


class Approve(pydantic.BaseModel):
    reason: str


class Reject(pydantic.BaseModel):
    reason: str


class Animal(pydantic.BaseModel):
    name: str


class Dog(Animal):
    bark: str


class Puppy(Dog):
    age_weeks: int


@dataclasses.dataclass
class Circle:
    size: float


@dataclasses.dataclass
class Square:
    size: float


class Colour(enum.Enum):
    RED = "r"


class Signal(enum.Enum):
    STOP = "r"


def replay(value: Any, output_type: Any) -> Any:
    """What the engine does: store the value and its tag, decode with both."""
    return decode(encode(value), output_type, type_tag=type_tag(value))


def test_type_tags_name_the_class_of_models_dataclasses_and_enums() -> None:
    assert type_tag(Reject(reason="r")) == f"{__name__}:Reject"
    assert type_tag(Circle(1.0)) == f"{__name__}:Circle"
    assert type_tag(Colour.RED) == f"{__name__}:Colour"
    for plain in (None, 1, 1.5, "s", True, [Reject(reason="r")], {"a": 1}, (1,), {1}):
        assert type_tag(plain) is None
    assert type_tag(Circle) is None  # a class is not a dataclass value


def test_a_union_of_look_alike_models_replays_the_member_that_was_returned() -> None:
    rejected = replay(Reject(reason="no"), Approve | Reject)
    assert type(rejected) is Reject and rejected == Reject(reason="no")
    approved = replay(Approve(reason="yes"), Approve | Reject)
    assert type(approved) is Approve
    # Without the tag pydantic takes the first member that validates: why the tag is stored.
    assert type(decode(encode(Reject(reason="no")), Approve | Reject)) is Approve
    for annotation in (
        Optional[Approve | Reject],  # noqa: UP045 - the typing.Optional spelling on purpose
        Annotated[Approve | Reject, "doc"],
        Annotated[Approve | Reject | None, "doc"],
        Approve | Annotated[Reject, "doc"],
    ):
        assert type(replay(Reject(reason="no"), annotation)) is Reject
    assert replay(None, Approve | Reject | None) is None


def test_a_base_class_annotation_replays_the_subclass_with_its_fields() -> None:
    dog = replay(Dog(name="rex", bark="woof"), Animal)
    assert type(dog) is Dog and dog.bark == "woof"
    puppy = replay(Puppy(name="bit", bark="yip", age_weeks=9), Animal)
    assert type(puppy) is Puppy and puppy.age_weeks == 9
    assert type(replay(Puppy(name="p", bark="y", age_weeks=1), Animal | None)) is Puppy
    assert type(replay(Animal(name="cat"), Animal)) is Animal


def test_look_alike_dataclasses_and_enums_replay_as_their_own_class() -> None:
    assert type(replay(Square(2.0), Circle | Square)) is Square
    assert replay(Signal.STOP, Colour | Signal) is Signal.STOP
    assert replay(Colour.RED, Colour | Signal) is Colour.RED


def test_a_tag_naming_nothing_reachable_validates_into_the_annotation() -> None:
    stored = encode(Dog(name="rex", bark="woof"))
    for tag in ("os:system", "tests.never_imported_module:Thing", f"{__name__}:Reject", "junk"):
        value = decode(stored, Animal, type_tag=tag)
        assert type(value) is Animal and value.name == "rex"
    assert "tests.never_imported_module" not in sys.modules
    assert decode(stored, None, type_tag=f"{__name__}:Dog") == {"name": "rex", "bark": "woof"}
    assert decode(stored, dict[str, str], type_tag=f"{__name__}:Dog") == {
        "name": "rex",
        "bark": "woof",
    }


class Account(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(populate_by_name=True)

    full_name: str = pydantic.Field(alias="fullName")
    opened: datetime
    period: timedelta
    ref: UUID
    kind: Literal["basic", "pro"] = "basic"
    colour: Colour = Colour.RED
    tags: set[str] = set()
    balance_cents: int = 0
    internal: str = pydantic.Field(default="x", exclude=True)

    @pydantic.field_serializer("balance_cents")
    def _cents(self, value: int) -> int:
        return value  # a serializer that keeps the value: replay must still validate

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def initials(self) -> str:
        return "".join(part[0] for part in self.full_name.split())


def _account(**extra: Any) -> Account:
    return Account(
        fullName="Ada Lovelace",
        opened=datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        period=timedelta(days=30),
        ref=UUID(int=7),
        **extra,
    )


def test_models_keep_aliases_serializers_computed_fields_and_exclusions() -> None:
    plain, with_tags = _account(), _account(tags={"b", "a"}, balance_cents=5)
    # Without sets the stored text is pydantic's own JSON dump of the model.
    assert encode(plain) == plain.model_dump_json(by_alias=True)
    text = encode(with_tags)
    assert '"fullName":"Ada Lovelace"' in text and '"tags":["a","b"]' in text
    assert '"initials":"AL"' in text and "internal" not in text
    for model in (plain, with_tags):
        assert decode(encode(model), Account) == model
        assert input_hash(decode(encode(model), Account)) == input_hash(model)


class Stamped(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(ser_json_bytes="hex", val_json_bytes="hex")

    when: Annotated[
        datetime, pydantic.PlainSerializer(lambda d: d.strftime("%Y-%m-%d"), when_used="json")
    ]
    raw: bytes
    tags: set[str]
    nested: list[frozenset[frozenset[str]]] = []


def test_json_only_serializers_and_json_config_still_apply_when_a_model_has_sets() -> None:
    stamped = Stamped(
        when=datetime(2024, 5, 6, 7, 8, tzinfo=UTC),
        raw=b"\x01\xff",
        tags={"b", "a"},
        nested=[frozenset({frozenset({"y", "x"}), frozenset({"a"})})],
    )
    text = encode(stamped)
    assert text == (
        '{"when":"2024-05-06","raw":"01ff","tags":["a","b"],"nested":[[["a"],["x","y"]]]}'
    )
    replayed = decode(text, Stamped)
    assert replayed.raw == b"\x01\xff" and replayed.tags == {"a", "b"}
    assert replayed.nested == stamped.nested


class Inner(pydantic.BaseModel):
    labels: frozenset[str]


class Outer(pydantic.BaseModel):
    items: dict[str, list[Inner]]
    extra: Any = None


def test_nested_sets_round_trip_through_the_annotation() -> None:
    outer = Outer(items={"k": [Inner(labels=frozenset({"z", "y"}))]}, extra={"s": {3, 1}, "l": [1]})
    assert encode(outer) == ('{"items":{"k":[{"labels":["y","z"]}]},"extra":{"s":[1,3],"l":[1]}}')
    replayed = decode(encode(outer), Outer)
    assert replayed.items == outer.items
    assert input_hash(replayed) == input_hash(outer)


@pytest.mark.parametrize(
    "value",
    [
        Approve(reason="r"),
        Circle(2.5),
        {"when": datetime(2024, 1, 1, tzinfo=UTC), "id": UUID(int=1), "raw": b"\x00\xff"},
        [Colour.RED, (1, 2)],
    ],
)
def test_hashes_of_values_pydantic_dumps_are_unchanged(value: Any) -> None:
    # What the hash of these values has always been: canonical JSON of pydantic's JSON dump.
    dumped = pydantic_core.to_jsonable_python(value, by_alias=True, bytes_mode="base64")
    assert input_hash(value) == input_hash(dumped)
