"""@workflow and @durable_step: the same guarantees, asked for by decoration."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import pytest

import tidebase
from tidebase import Tidebase
from tidebase.aio import AsyncTidebase
from tidebase.errors import InputMismatch, NotSerializable

calls: list[str] = []


crashes: list[str] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    crashes.clear()


def crash_once(where: str) -> None:
    """Raise the first time ``where`` is reached, as a process dying there would."""
    if where not in crashes:
        crashes.append(where)
        raise RuntimeError(f"crash in {where}")


@dataclass
class Page:
    url: str
    words: int


@tidebase.step
def fetch(url: str) -> Page:
    """Fetch a page."""
    calls.append(f"fetch {url}")
    return Page(url, len(url))


@tidebase.durable_step(key="content")
def lookup(term: str, limit: int = 3) -> list[str]:
    calls.append(f"lookup {term}")
    return [term] * limit


crash = {"on": False}


@tidebase.workflow
def research(topic: str, depth: int = 2) -> str:
    pages = [fetch(f"https://{topic}/{i}") for i in range(depth)]
    if crash["on"]:
        crash["on"] = False
        raise RuntimeError("crash after fetching")
    return f"{topic}: {sum(p.words for p in pages)} words, {pages[0].__class__.__name__}"


def test_decorated_functions_keep_their_signature_and_docstring() -> None:
    assert fetch.__name__ == "fetch" and fetch.__doc__ == "Fetch a page."
    assert str(inspect.signature(fetch)) == "(url: 'str') -> 'Page'"
    assert str(inspect.signature(research)) == "(topic: 'str', depth: 'int' = 2) -> 'str'"
    assert not inspect.iscoroutinefunction(research)


def test_a_step_outside_any_workflow_just_runs(tide: Tidebase) -> None:
    assert fetch("https://x") == Page("https://x", 9)
    assert fetch("https://x") == Page("https://x", 9)
    assert calls == ["fetch https://x", "fetch https://x"]


def test_a_decorated_workflow_replays_typed_steps_after_a_failure(tide: Tidebase) -> None:
    crash["on"] = True
    with pytest.raises(RuntimeError):
        research.run("tides", run_id="w1")
    assert calls == ["fetch https://tides/0", "fetch https://tides/1"]
    assert research.run("tides", depth=2, run_id="w1") == "tides: 30 words, Page"
    assert len(calls) == 2  # replayed as Page objects, not re-fetched
    run = tide.runs.get("w1")
    assert run.workflow_name == "research" and run.input == {"topic": "tides", "depth": 2}
    with pytest.raises(InputMismatch, match="run 'w1' was started with different input"):
        research.run("tides", depth=3, run_id="w1")
    assert [s.name for s in tide.runs.steps("w1")] == ["fetch", "fetch#2"]


def test_run_id_context_and_current_run(tide: Tidebase) -> None:
    seen: list[str] = []

    @tidebase.workflow
    def whoami() -> str:
        ctx = tidebase.current_run()
        assert ctx is not None
        seen.append(ctx.run_id)
        return ctx.run_id

    with tidebase.run_id("chosen-1"):
        assert whoami() == "chosen-1"
    assert tidebase.current_run() is None
    fresh = whoami()
    assert fresh != "chosen-1" and seen == ["chosen-1", fresh]


def test_sequence_keys_catch_a_changed_argument(tide: Tidebase) -> None:
    topics = ["a", "b"]

    @tidebase.workflow(name="drift")
    def drift() -> list[Page]:
        out = [fetch(t) for t in topics]
        crash_once("drift")
        return out

    with pytest.raises(RuntimeError):
        drift.run(run_id="d1")
    topics[1] = "changed"
    with pytest.raises(InputMismatch, match="fetch#2"):
        drift.run(run_id="d1")


def test_content_keys_follow_the_arguments_not_the_order(tide: Tidebase) -> None:
    order = ["x", "y", "x"]

    @tidebase.workflow
    def tools() -> list[list[str]]:
        out = [lookup(t) for t in order]
        crash_once("tools")
        return out

    with pytest.raises(RuntimeError):
        tools.run(run_id="c1")
    order.reverse()  # a nondeterministic agent calls its tools in another order
    assert tools.run(run_id="c1") == [["x"] * 3, ["y"] * 3, ["x"] * 3]
    assert calls == ["lookup x", "lookup y", "lookup x"]
    keys = [s.name for s in tide.runs.steps("c1")]
    assert len(keys) == 3 and all(k.startswith("lookup:") for k in keys)
    assert keys[0] + "#2" in keys  # identical calls stay distinct


def test_key_callable_chooses_the_key_and_unserializable_arguments_are_named(
    tide: Tidebase,
) -> None:
    class Client:
        pass

    @tidebase.durable_step(key=lambda client, order_id: order_id)
    def ship(client: Client, order_id: str) -> str:
        calls.append(order_id)
        return f"shipped {order_id}"

    @tidebase.step
    def unkeyed(client: Client, order_id: str) -> str:
        return order_id

    @tidebase.workflow
    def orders() -> list[str]:
        return [ship(Client(), "o-1"), ship(Client(), "o-2")]

    assert orders.run(run_id="k1") == ["shipped o-1", "shipped o-2"]
    assert [s.name for s in tide.runs.steps("k1")] == [
        f"{ship.__qualname__}:o-1",
        f"{ship.__qualname__}:o-2",
    ]

    @tidebase.workflow
    def bad() -> str:
        return unkeyed(Client(), "o-1")

    with pytest.raises(NotSerializable, match=r"\['client'\].*Client.*pass key="):
        bad.run(run_id="k2")


class Shop:
    def __init__(self, name: str) -> None:
        self.name = name

    @tidebase.step
    def price(self, item: str) -> int:
        calls.append(f"{self.name} price {item}")
        return len(item)

    @tidebase.step
    @classmethod
    def currency(cls) -> str:
        calls.append("currency")
        return "EUR"

    @tidebase.step
    @staticmethod
    def tax(amount: int) -> float:
        calls.append("tax")
        return amount * 0.2

    @tidebase.workflow
    def quote(self, item: str) -> str:
        price = self.price(item)
        crash_once("quote")
        return f"{price} {self.currency()} + {self.tax(price)}"


def test_methods_classmethods_and_staticmethods(tide: Tidebase) -> None:
    shop = Shop("s1")
    with pytest.raises(RuntimeError):
        shop.quote.run("book", run_id="m1")
    assert shop.quote.run("book", run_id="m1") == "4 EUR + 0.8"
    assert calls == ["s1 price book", "currency", "tax"]
    steps = tide.runs.steps("m1")
    assert [s.name for s in steps] == ["Shop.price", "Shop.currency", "Shop.tax"]
    assert tide.runs.get("m1").input == {"item": "book"}  # self is not part of the input
    assert str(inspect.signature(Shop.price)) == "(self, item: 'str') -> 'int'"


def test_a_workflow_called_from_a_workflow_is_resumed_not_restarted(tide: Tidebase) -> None:
    @tidebase.workflow
    def child(n: int) -> int:
        calls.append(f"child {n}")
        return n * 2

    @tidebase.workflow
    def parent() -> int:
        total = child(1) + child(2)
        crash_once("parent")
        return total

    with pytest.raises(RuntimeError):
        parent.run(run_id="p1")
    assert parent.run(run_id="p1") == 6
    assert calls == ["child 1", "child 2"]
    assert {r.run_id for r in tide.runs.list(workflow=child.__qualname__)} == {
        f"p1/{child.__qualname__}",
        f"p1/{child.__qualname__}#2",
    }


def test_a_client_bound_workflow_uses_that_client(tide: Tidebase) -> None:
    @tide.workflow(name="bound")
    def bound() -> str:
        return "ok"

    assert bound.run(run_id="b1") == "ok"
    assert tide.runs.get("b1").workflow_name == "bound"


# -- async ------------------------------------------------------------------------------------


@tidebase.step
async def afetch(url: str) -> Page:
    calls.append(f"afetch {url}")
    return Page(url, 1)


@tidebase.workflow
async def aresearch(topic: str) -> list[Page]:
    pages = [await afetch(f"{topic}/1"), fetch(f"{topic}/2")]  # async and sync steps
    crash_once("aresearch")
    return pages


async def test_async_workflows_with_async_and_sync_steps(atide: AsyncTidebase) -> None:
    assert inspect.iscoroutinefunction(aresearch) and inspect.iscoroutinefunction(afetch)
    with pytest.raises(RuntimeError):
        await aresearch.run("t", run_id="a1")
    result = await aresearch.run("t", run_id="a1")
    assert result == [Page("t/1", 1), Page("t/2", 3)]
    assert calls == ["afetch t/1", "fetch t/2"]
    assert [s.name for s in await atide.runs.steps("a1")] == ["afetch", "fetch"]
    assert await aresearch.run("t", run_id="a1") == result  # completed: the stored result, typed


def test_an_async_step_inside_a_sync_workflow_is_a_clear_error(tide: Tidebase) -> None:
    @tidebase.workflow
    def mixed() -> object:
        return afetch("x")

    with pytest.raises(TypeError, match="make the workflow async, or the step sync"):
        mixed.run(run_id="x1")
