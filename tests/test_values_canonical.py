"""Stored text and input hashes: deterministic across processes, exact for plain JSON values,
and the input hash is the official Tidebase SDKs' hash."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import textwrap
from typing import Any

import pydantic
import pytest

from tidebase_core.serialization import decode, encode, encode_with_hash, input_hash

from .conftest import ROOT


class Tagged(pydantic.BaseModel):
    name: str
    tags: set[str]
    frozen: frozenset[int] = frozenset()


@dataclasses.dataclass
class Box:
    labels: set[str]
    inner: dict[str, Any] = dataclasses.field(default_factory=dict)


@pydantic.dataclasses.dataclass
class PydanticBox:
    labels: set[str]
    nested: list[Tagged] = dataclasses.field(default_factory=list)


def test_sets_inside_models_and_dataclasses_are_stored_sorted() -> None:
    assert encode(Tagged(name="t", tags={"b", "c", "a"}, frozen=frozenset({3, 1, 2}))) == (
        '{"name":"t","tags":["a","b","c"],"frozen":[1,2,3]}'
    )
    assert encode(Box({"y", "x"}, {"deep": [{"s": frozenset({"q", "p"})}]})) == (
        '{"labels":["x","y"],"inner":{"deep":[{"s":["p","q"]}]}}'
    )
    assert encode(PydanticBox({"n", "m"}, [Tagged(name="i", tags={"z", "w"})])) == (
        '{"labels":["m","n"],"nested":[{"name":"i","tags":["w","z"],"frozen":[]}]}'
    )
    assert encode({"s": {("b", 1), ("a", 2)}}) == '{"s":[["a",2],["b",1]]}'


def test_set_members_of_mixed_types_have_one_order() -> None:
    # Sorted by each member's canonical JSON text, so any mix of member types has an order.
    assert encode({3, "3", None, 1.5}) == encode({None, 1.5, "3", 3})
    assert json.loads(encode({3, "3", None, 1.5})) == ["3", 1.5, 3, None]


_PROBE = textwrap.dedent(
    """
    import dataclasses, json, pydantic
    from tidebase_core.serialization import encode, encode_with_hash, input_hash

    class Profile(pydantic.BaseModel):
        user: str
        tags: set[str]
        roles: frozenset[str]

    @dataclasses.dataclass
    class Record:
        ids: set[str]
        profile: Profile

    words = {f"word-{i}" for i in range(12)}
    values = [
        Profile(user="u", tags=words, roles=frozenset(words)),
        Record(ids=words, profile=Profile(user="v", tags=words, roles=frozenset())),
        {"top": words, "list": [words]},
    ]
    print(json.dumps({
        "order": list(words),
        "encoded": [encode(v) for v in values],
        "hashes": [input_hash(v) for v in values],
        "pairs": [encode_with_hash(v, what="v") for v in values],
    }))
    """
)


def test_encode_and_hash_do_not_depend_on_pythonhashseed() -> None:
    env = dict(os.environ)
    probes = [
        subprocess.Popen(
            [sys.executable, "-c", _PROBE],
            cwd=ROOT,
            env={**env, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in ("0", "1", "12345")
    ]
    outputs = []
    for probe in probes:
        stdout, _ = probe.communicate(timeout=120)
        assert probe.returncode == 0
        outputs.append(json.loads(stdout))
    # The seeds do change set iteration order, so the test can tell sorted from unsorted.
    assert len({tuple(o["order"]) for o in outputs}) > 1
    for other in outputs[1:]:
        assert other["encoded"] == outputs[0]["encoded"]
        assert other["hashes"] == outputs[0]["hashes"]
        assert other["pairs"] == outputs[0]["pairs"]
    encoded, hashes = outputs[0]["encoded"], outputs[0]["hashes"]
    assert '"tags":["word-0","word-1","word-10","word-11","word-2"' in encoded[0]
    assert hashes == [input_hash(decode(text)) for text in encoded]


def test_encode_keeps_key_order_and_the_hash_ignores_it() -> None:
    first, second = {"b": 1, "a": {"d": 2, "c": 3}}, {"a": {"c": 3, "d": 2}, "b": 1}
    assert encode(first) == '{"b":1,"a":{"d":2,"c":3}}'
    assert encode(second) == '{"a":{"c":3,"d":2},"b":1}'
    assert input_hash(first) == input_hash(second)
    assert input_hash({"a": 1, "b": {2, 1}}) == input_hash({"b": {1, 2}, "a": 1})
    assert input_hash({"a": 1}) != input_hash({"a": 1.5})


def test_encode_with_hash_is_the_stored_text_and_the_canonical_hash() -> None:
    for value in (
        {"b": 1, "a": [{"z": None, "y": "é"}]},
        Tagged(name="x", tags={"q", "p"}),
        Box({"s"}, {"k2": 1, "k1": 2}),
        None,
        [3, 2, 1],
    ):
        assert encode_with_hash(value, what="input") == (encode(value), input_hash(value))
    text, digest = encode_with_hash({"b": 1, "a": 2}, what="input")
    assert text == '{"b":1,"a":2}'
    assert digest == input_hash({"a": 2, "b": 1})


# Digests computed with the official Python SDK (tidebase 0.7.0, ``_hash_stable``): sha256 of
# JSON with sorted keys, ensure_ascii=False and separators (",", ":").
SDK_DIGESTS: list[tuple[Any, str]] = [
    (None, "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"),
    (True, "b5bea41b6c623f7c09f1bf24dcae58ebab3c0cdd90ad966bc43a45b44867e12b"),
    (False, "fcbcf165908dd18a9e49f7ff27810176db8e9f63b4352213741664245224f8aa"),
    (-42, "fec80006df0542549b4cbaafb8987eee00bb49bca396eefe9ac8be5b5928e8f6"),
    (1.5, "9f29a130438b81170b92a42650f9a94291ecad60bd47af2a3886e75f7f728725"),
    (1e16, "a144838520595009e7daf5aff8472573f9ce6a4bcd8c30673675618883464ab0"),
    (-0.0, "c26617c7ccbcaa6631b45d851b8cf56e21d2ca624bdb1193afdbd4b560702cec"),
    (
        12345678901234567890,
        "6ed645ef0e1abea1bf1e4e935ff04f9e18d39812387f63cda3415b46240f0405",
    ),
    ("", "12ae32cb1ec02d01eda3581b127c1fee3b0dc53572ed6baf239721a03d82e126"),
    (
        "héllo wörld ✓ 日本",
        "4cbb0cf6121acc90acb874cf7b50b4726ebca223bccc3a64f8e6fcfb9a3b91e4",
    ),
    (
        'quote " back \\ nl \n tab \t ctl \x01',
        "fcbdf01ad121fe53dd271407af39ea0b8dc4d35fbfaf422eae7fd6ed5a2166a9",
    ),
    ({}, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"),
    ([], "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"),
    (
        {"b": 1, "a": [1, 2, {"d": None, "c": "x"}]},
        "3c96a5686bce3a4cd09a224d3cf78fa2fa032ebb31970e3a6f4942100a90faf5",
    ),
    (
        {"z": {"y": {"x": [True, False, None]}}, "a": -1.25e-7},
        "bfd407c54f5c4c29c95faa0c74cff79d5634c727d5682b0bf0b28df3ddda7d40",
    ),
    (
        [{"b": 2, "a": 1}, [], {}],
        "c16f9430bcb4f93cb42a253536b5ed863e9f9f3684c8003c26ce103cfbe58747",
    ),
    (
        {"é": 1, "e": 2, "Z": 3, "_": 4},
        "51bf7ccf1d691565dd3538c716eafc52762f9d7f3a8cd7d6f788fef8051f429b",
    ),
]


@pytest.mark.parametrize(("value", "digest"), SDK_DIGESTS)
def test_input_hash_equals_the_official_sdk_hash(value: Any, digest: str) -> None:
    assert input_hash(value) == digest
    assert encode_with_hash(value, what="input")[1] == digest
    # A tuple is a JSON array: it hashes as the list would.
    if isinstance(value, list):
        assert input_hash(tuple(value)) == digest


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": 2, "c": {"z": [], "y": {}}},
        [1e16, 1.0, -0.0, 0.0, 1.5, 5e-324, 1.7976931348623157e308, -2.5e-8],
        [2**64, -(2**70), 10**40, 0, -1],
        {"unicode": "日本 ✓ \U0001f600", "escapes": '"\\\n\t\x01'},
        [True, False, None, "", [], {}],
    ],
)
def test_plain_values_replay_exactly(value: Any) -> None:
    replayed = decode(encode(value))
    assert_identical(replayed, value)
    assert input_hash(replayed) == input_hash(value)


def test_minus_zero_keeps_its_sign_and_whole_floats_stay_floats() -> None:
    replayed = decode(encode({"z": -0.0, "f": 1.0, "big": 1e16}))
    assert math.copysign(1.0, replayed["z"]) == -1.0
    assert type(replayed["f"]) is float and type(replayed["big"]) is float
    assert list(replayed) == ["z", "f", "big"]


def assert_identical(actual: Any, expected: Any, path: str = "") -> None:
    """Equal, and also of the same types, with the same dict key order and float signs."""
    assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: key order"
        for key in expected:
            assert_identical(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: length"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_identical(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert actual == expected and math.copysign(1.0, actual) == math.copysign(1.0, expected)
    else:
        assert actual == expected, path
