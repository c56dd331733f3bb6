"""The durable overhead of LangChain model and tool calls (not a test; run it by hand):

    TIDEBASE_HOME=.tidebase python -m tests.integrations.langchain.bench_overhead

20 tool calls (a durable tool against the same tool plain), and 21 calls of a scripted chat
model (langchain-core's fake model: no network) in a conversation of 2 or 200 messages, plain
(outside a run) and durable (inside a run, first execution). The time spent in the checkpoint
write itself (``StoreConnection.write_checkpoint``: the one statement that stores the
checkpoint with its usage row) is measured inside the durable run. Overhead per call =
(durable − plain − write) / calls, in CPU time of the calling thread (the database's latency
does not move it; the write's own CPU is excluded with the write), and in wall time. Median
of several repetitions.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

import tidebase_langchain
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from tidebase import RunContext, Tidebase
from tidebase_core._sync.store import StoreConnection

from .scripted import ScriptedChatModel, echo_script, research_tools

CALLS = 21
TOOL_CALLS = 20
REPEAT = 15


def conversation(length: int) -> list[BaseMessage]:
    messages: list[BaseMessage] = []
    for i in range(length // 2):
        messages.append(HumanMessage(f"question {i} " + "about the tides " * 20))
        messages.append(AIMessage(f"answer {i} " + "the moon pulls the sea " * 20))
    return messages


def talk(model: ScriptedChatModel, history: list[BaseMessage]) -> tuple[float, float]:
    """(CPU, wall) seconds of 21 calls."""
    messages = list(history)
    cpu, wall = time.thread_time(), time.perf_counter()
    for i in range(CALLS):
        messages.append(HumanMessage(f"and {i}?"))
        messages.append(model.invoke(messages))
    return time.thread_time() - cpu, time.perf_counter() - wall


class WriteClock:
    """Time spent in the checkpoint write (the database round trip and its encoding)."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0
        self._write = StoreConnection.write_checkpoint

    def __enter__(self) -> WriteClock:
        clock, write = self, self._write

        def timed(*args: Any, **kwargs: Any) -> Any:
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return write(*args, **kwargs)
            finally:
                clock.cpu += time.thread_time() - cpu
                clock.wall += time.perf_counter() - wall

        StoreConnection.write_checkpoint = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        StoreConnection.write_checkpoint = self._write  # type: ignore[method-assign]


def use_tools(tool: Any) -> tuple[float, float]:
    """(CPU, wall) seconds of 20 tool calls, each with its own tool_call_id."""
    cpu, wall = time.thread_time(), time.perf_counter()
    for i in range(TOOL_CALLS):
        tool.invoke(
            {"type": "tool_call", "name": "search", "args": {"query": f"q{i}"}, "id": f"c{i}"}
        )
    return time.thread_time() - cpu, time.perf_counter() - wall


def median_per_call(rows: dict[str, list[float]], calls: int) -> str:
    return ", ".join(
        f"{name} {statistics.median(values) * 1000 / calls:.3f}" for name, values in rows.items()
    )


def main() -> None:
    tidebase_langchain.install()
    model = ScriptedChatModel(script=echo_script)
    search = research_tools()[0]
    durable_search = tidebase_langchain.durable_tool(search)
    with Tidebase() as tide:
        rows: dict[str, list[float]] = {}
        for _ in range(REPEAT):
            plain = use_tools(search)
            with WriteClock() as clock:
                durable = tide.run(
                    "tools", lambda run, _: use_tools(durable_search), run_id=str(uuid.uuid4())
                )
            for name, value in (
                ("plain", plain[1]),
                ("durable", durable[1]),
                ("write", clock.wall),
                ("overhead wall", durable[1] - plain[1] - clock.wall),
                ("overhead cpu", durable[0] - plain[0] - clock.cpu),
            ):
                rows.setdefault(name, []).append(value)
        print(f"tool calls (ms per call): {median_per_call(rows, TOOL_CALLS)}")
        for length in (2, 200):
            history = conversation(length)
            rows: dict[str, list[float]] = {}
            for _ in range(REPEAT):
                plain = talk(model, history)

                # The same history each time: its messages' digests are computed on the first
                # repetition and kept, as in a live conversation (each message hashed once).
                def workflow(
                    run: RunContext, _: Any, history: list[BaseMessage] = history
                ) -> tuple[float, float]:
                    return talk(model, history)

                with WriteClock() as clock:
                    durable = tide.run("bench", workflow, run_id=str(uuid.uuid4()))
                for name, value in (
                    ("plain", plain[1]),
                    ("durable", durable[1]),
                    ("write", clock.wall),
                    ("overhead wall", durable[1] - plain[1] - clock.wall),
                    ("overhead cpu", durable[0] - plain[0] - clock.cpu),
                ):
                    rows.setdefault(name, []).append(value)
            print(f"{length:>3} messages (ms per call): {median_per_call(rows, CALLS)}")


if __name__ == "__main__":
    main()
