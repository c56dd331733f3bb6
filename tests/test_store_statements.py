"""A run's connection is shared by its branches (threads of a sync run, tasks of an async one),
and its statements go through one cursor: each statement's rows reach the code that sent it,
never another branch's."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator

import pytest

from tidebase import Tidebase
from tidebase.aio import AsyncTidebase

THREADS = 8
STATEMENTS = 150


@pytest.fixture
def switching_often() -> Iterator[None]:
    """Threads switch every microsecond: a window between a statement and its rows is hit."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


@pytest.mark.usefixtures("switching_often")
def test_threads_sharing_a_connection_each_read_their_own_rows(tide: Tidebase) -> None:
    wrong: list[tuple[int, object]] = []
    start = threading.Barrier(THREADS)
    with tide._store.connection() as db:

        def reader(thread: int) -> None:
            start.wait()
            for i in range(STATEMENTS):
                n = thread * STATEMENTS + i
                rows = db._read("SELECT %(n)s::int", {"n": n})
                if [row[0] for row in rows] != [n]:
                    wrong.append((n, rows))

        threads = [threading.Thread(target=reader, args=(t,)) for t in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert wrong == []


async def test_tasks_sharing_a_connection_each_read_their_own_rows(atide: AsyncTidebase) -> None:
    async with atide._store.connection() as db:

        async def reader(task: int) -> list[int]:
            got: list[int] = []
            for i in range(STATEMENTS):
                rows = await db._read("SELECT %(n)s::int", {"n": task * STATEMENTS + i})
                got += [row[0] for row in rows]
            return got

        results = await asyncio.gather(*(reader(t) for t in range(THREADS)))

    assert results == [list(range(t * STATEMENTS, (t + 1) * STATEMENTS)) for t in range(THREADS)]
