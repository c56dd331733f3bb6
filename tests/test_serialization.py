"""One module turns values into stored JSON and back: hashing, codecs, refusals."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tidebase import RunContext, Tidebase
from tidebase.errors import NotSerializable
from tidebase_core.serialization import decode, encode, input_hash, register_codec


class Reply:
    """A framework result object pydantic cannot serialize by itself."""

    def __init__(self, text: str, tokens: int) -> None:
        self.text = text
        self.tokens = tokens

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reply) and (self.text, self.tokens) == (other.text, other.tokens)


register_codec(
    Reply,
    tag="tests.Reply",
    dump=lambda r: {"text": r.text, "tokens": r.tokens},
    load=lambda value, output_type: Reply(value["text"], value["tokens"]),
)


def test_a_registered_codec_round_trips_with_and_without_a_type() -> None:
    stored = encode({"replies": [Reply("hi", 3)]})
    assert '"$tidebase":"tests.Reply"' in stored
    assert decode(stored) == {"replies": [Reply("hi", 3)]}
    assert decode(encode(Reply("x", 1)), Reply) == Reply("x", 1)
    assert decode(encode(Reply("x", 1))) == Reply("x", 1)


def test_a_step_returning_a_codec_type_replays_as_that_type(tide: Tidebase) -> None:
    seen: list[object] = []

    def wf(run: RunContext, input: None) -> str:
        seen.append(run.step("call", lambda: Reply("answer", 7)))
        if run.attempt == 1:
            raise RuntimeError("crash")
        return "ok"

    with pytest.raises(RuntimeError):
        tide.run("wf", wf, run_id="codec")
    tide.run("wf", wf, run_id="codec")
    assert seen == [Reply("answer", 7), Reply("answer", 7)]
    assert isinstance(seen[1], Reply)


def test_unregistered_objects_are_refused_with_their_type_named() -> None:
    class Handle:
        pass

    with pytest.raises(NotSerializable, match=r"at \['h'\]: a .*Handle object"):
        encode({"h": Handle()}, what="output of step 's'")


def test_input_hashes_ignore_key_and_set_order_but_not_values() -> None:
    assert input_hash({"a": 1, "b": {2, 1}}) == input_hash({"b": {1, 2}, "a": 1})
    assert input_hash({"a": 1}) != input_hash({"a": 1.5})
    assert input_hash(None) == input_hash(None)


_IMPORTED = """
import sys
from pydantic import BaseModel
from tidebase_core.serialization import decode

class Out(BaseModel):
    x: int

assert decode('{"x": 1}', Out) == Out(x=1) and decode('"s"', str) == "s"
try:
    decode(sys.argv[1])
except Exception:
    pass  # what the plugin makes of the value does not matter here, only what was imported
print(sorted(m for m in ("agents", "langchain_core", "pydantic_ai") if m in sys.modules))
"""


@pytest.mark.parametrize(
    ("stored", "imported"),
    [
        ('{"plain": 1}', []),
        # A value a plugin stored: only that framework's plugin is imported to read it.
        pytest.param(
            '{"$tidebase": "langchain", "value": "x"}',
            ["langchain_core"],
            marks=pytest.mark.skipif(
                importlib.util.find_spec("langchain_core") is None,
                reason="needs tidebase[langchain]",
            ),
        ),
    ],
)
def test_decoding_a_checkpoint_imports_only_the_plugin_it_needs(
    stored: str, imported: list[str]
) -> None:
    """Resuming in a fresh process must not import every installed framework (it took
    seconds): a codec's plugin is found by the framework's name, and only when needed."""
    done = subprocess.run(
        [sys.executable, "-c", _IMPORTED, stored], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == repr(imported)
