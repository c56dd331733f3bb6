"""Property tests: whatever goes through a checkpoint comes back exactly, and hashes the same."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pydantic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidebase_core.serialization import decode, encode, encode_with_hash, input_hash

from .test_values_canonical import assert_identical

# Postgres cannot store NUL, and lone surrogates are not text: both are refused, not replayed.
text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=8,
)
floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [-0.0, 0.0, 1.0, 1e16, -1e16, 1e300, -1e-300, 5e-324, 1.7976931348623157e308]
)
integers = st.integers() | st.integers(min_value=-(2**100), max_value=2**100)
scalars = st.none() | st.booleans() | integers | floats | text
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=16,
)

FAST = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@FAST
@given(json_values)
def test_plain_json_values_replay_exactly_and_hash_the_same(value: Any) -> None:
    stored = encode(value)
    replayed = decode(stored)
    assert_identical(replayed, value)
    assert input_hash(replayed) == input_hash(value)
    assert encode(replayed) == stored
    assert encode_with_hash(value, what="input") == (stored, input_hash(value))


@FAST
@given(json_values)
def test_the_hash_of_plain_json_is_sorted_compact_unescaped_json(value: Any) -> None:
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert input_hash(value) == hashlib.sha256(canonical.encode()).hexdigest()


class Leaf(pydantic.BaseModel):
    name: str
    weight: float


class Tree(pydantic.BaseModel):
    title: str
    counts: list[int]
    scores: dict[str, float]
    tags: set[str]
    ids: frozenset[int]
    leaves: list[Leaf]
    best: Leaf | None = None
    anything: Any = None


@dataclasses.dataclass
class Bag:
    labels: set[str]
    items: list[int]
    lookup: dict[str, list[str]]
    tree: Tree | None = None


@pydantic.dataclasses.dataclass
class Crate:
    names: frozenset[str]
    bags: list[Bag]
    meta: dict[str, int]


leaves = st.builds(Leaf, name=text, weight=floats)
trees = st.builds(
    Tree,
    title=text,
    counts=st.lists(integers, max_size=4),
    scores=st.dictionaries(text, floats, max_size=3),
    tags=st.sets(text, max_size=5),
    ids=st.frozensets(integers, max_size=5),
    leaves=st.lists(leaves, max_size=3),
    best=st.none() | leaves,
    anything=json_values | st.sets(text, max_size=4),
)
bags = st.builds(
    Bag,
    labels=st.sets(text, max_size=5),
    items=st.lists(integers, max_size=4),
    lookup=st.dictionaries(text, st.lists(text, max_size=3), max_size=3),
    tree=st.none() | trees,
)
crates = st.builds(
    Crate,
    names=st.frozensets(text, max_size=4),
    bags=st.lists(bags, max_size=2),
    meta=st.dictionaries(text, integers, max_size=3),
)


@settings(FAST, max_examples=40)
@given(trees | bags | crates)
def test_models_and_dataclasses_replay_into_their_type_and_hash_the_same(value: Any) -> None:
    stored = encode(value)
    replayed = decode(stored, type(value))
    if isinstance(value, Tree):
        # An ``Any`` field holding a set replays as the list it was stored as.
        assert replayed.model_dump(exclude={"anything"}) == value.model_dump(exclude={"anything"})
    else:
        assert replayed == _without_any_sets(value)
    assert input_hash(replayed) == input_hash(value)
    assert encode(replayed) == stored


def _without_any_sets(value: Any) -> Any:
    """``value`` with sets in ``Tree.anything`` turned into the sorted lists they replay as."""
    if isinstance(value, Tree) and isinstance(value.anything, set | frozenset):
        return value.model_copy(update={"anything": json.loads(encode(value.anything))})
    if isinstance(value, Bag):
        return dataclasses.replace(value, tree=_without_any_sets(value.tree))
    if isinstance(value, Crate):
        return Crate(value.names, [_without_any_sets(b) for b in value.bags], value.meta)
    return value


class Labelled(pydantic.BaseModel):
    """Plain but for top-level sets of strings and ints: encoded on a faster route."""

    model_config = pydantic.ConfigDict(populate_by_name=True)

    title: str
    labels: set[str] = pydantic.Field(alias="Labels")
    ids: frozenset[int]
    maybe: set[str] | None = None
    weight: float = 0.0


labelled = st.builds(
    Labelled,
    title=text,
    Labels=st.sets(text, max_size=6),
    ids=st.frozensets(integers, max_size=6),
    maybe=st.none() | st.sets(text, max_size=3),
    weight=floats,
)


@FAST
@given(labelled)
def test_the_fast_route_for_set_fields_stores_what_the_walk_stores(value: Labelled) -> None:
    stored = encode(value)
    # Inside a list the model takes the general walk: both must write the same text.
    assert encode([value]) == f"[{stored}]"
    assert decode(stored, Labelled) == value
    assert input_hash(value) == input_hash(decode(stored)) == input_hash(decode(stored, Labelled))
