"""Parallel LangGraph nodes that run steps of the same name: refused when their keys would come
from timing, replayed exactly when each node names its branch."""

from __future__ import annotations

import operator
import threading
import time
from collections import Counter
from typing import Annotated, Any, TypedDict

import pytest

pytest.importorskip("langgraph", reason="needs langgraph")

from langgraph.graph import END, START, StateGraph

from tidebase import RunContext, Tidebase
from tidebase.errors import BranchAmbiguous


class State(TypedDict):
    out: Annotated[list[str], operator.add]


def graph(run: RunContext, ran: Counter[str], *, named: bool) -> Any:
    b_started = threading.Event()

    def node(name: str) -> Any:
        def fetch_node(state: State) -> dict[str, list[str]]:
            if name == "a":
                b_started.wait(5)
                time.sleep(0.05)  # "b" takes the step name first
            else:
                b_started.set()

            def fetch() -> str:
                ran[name] += 1
                return f"{name}-result"

            if named:
                with run.branch(name):
                    value = run.step("fetch", fetch)
            else:
                value = run.step("fetch", fetch)
            return {"out": [f"{name}:{value}"]}

        return fetch_node

    g = StateGraph(State)
    g.add_node("a", node("a"))
    g.add_node("b", node("b"))
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge("a", END)
    g.add_edge("b", END)
    return g.compile()


def test_parallel_nodes_taking_one_step_name_by_timing_are_refused(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> list[str]:
        return sorted(graph(run, Counter(), named=False).invoke({"out": []})["out"])

    with pytest.raises(BranchAmbiguous, match=r"run\.branch"):
        tide.run("lg", wf, run_id="lg-unnamed")


def test_parallel_nodes_in_named_branches_replay_their_own_results(tide: Tidebase) -> None:
    ran: Counter[str] = Counter()

    def wf(run: RunContext, input: None) -> list[str]:
        out = sorted(graph(run, ran, named=True).invoke({"out": []})["out"])
        if run.attempt == 1:
            raise RuntimeError("crash")
        return out

    with pytest.raises(RuntimeError):
        tide.run("lg", wf, run_id="lg-named")
    assert tide.run("lg", wf, run_id="lg-named") == ["a:a-result", "b:b-result"]
    assert ran == {"a": 1, "b": 1}
    steps = {s.name: s.output for s in tide.runs.steps("lg-named")}
    assert steps == {"#a/fetch": "a-result", "#b/fetch": "b-result"}
