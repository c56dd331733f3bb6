"""Keys: the one allocator of the names a run's steps, gates, child edges and workflow-body
operations are checkpointed under.

A key is a path of segments joined by ``/``:

- a named segment is the (escaped) name, with ``#n`` for its n-th occurrence in its scope:
  ``plan``, ``plan#2``;
- the body of a step is a scope of its own: ``outer/inner``. Each try of the step starts the
  scope afresh, so a retried outer step replays the inner steps its earlier try completed;
- a branch is a scope of its own: ``#doc-1/summarize`` (``run.branch("doc-1")``), or
  ``#fetch#2/fetch`` for the second thread started inside the run running ``fetch``.

Names are escaped (``%`` → ``%25``, ``/`` → ``%2F``), so a top-level step named ``a/b`` never
shares a key with step ``b`` nested in step ``a``. ``#`` is refused in names: it starts branch
segments and occurrence counts.

Concurrency. ``run.step`` and decorated steps take their key when they are *called*, in program
order, so steps started together (``gather(summarize(a), summarize(b))``) keep their keys
whatever order they finish in. Threads started inside the run (an executor, ``Thread``) get a
branch each, numbered in the order they were started. Coroutines that run several steps
concurrently (two ``agent.run`` calls in a gather) name their branches with ``run.branch``.
Code runs in *strands* (the workflow body, each asyncio task, each thread); a strand that takes
a name in a scope where a strand it lived alongside took it too (not its ancestor, nor a child
it waited for, nor a sibling task created before it, both taking their first key: tasks start
in creation order) could be racing it: that is refused at first execution
(``BranchAmbiguous``) rather than replayed by luck.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Literal

from .errors import BranchAmbiguous, StepTimeout

__all__ = ["Kind", "Scope", "Strand", "current_scope", "current_strand", "entered", "escape"]

Kind = Literal["step", "gate", "child", "op"]


def escape(name: str) -> str:
    if "%" in name or "/" in name:
        return name.replace("%", "%25").replace("/", "%2F")
    return name


_clock = itertools.count(1)  # orders strands' births and ends, across threads (next() is atomic)


class Strand:
    """One sequential line of execution inside a run: the body, a task, a thread."""

    __slots__ = ("allocated", "born", "ended", "label", "parent")

    def __init__(self, label: str, parent: Strand | None = None) -> None:
        self.label = label
        self.parent = parent
        self.born = next(_clock)
        self.ended: int | None = None
        self.allocated = 0  # keys taken so far

    @property
    def done(self) -> bool:
        return self.ended is not None

    def end(self) -> None:
        self.ended = next(_clock)

    def descends_from(self, other: Strand) -> bool:
        strand: Strand | None = self.parent
        while strand is not None:
            if strand is other:
                return True
            strand = strand.parent
        return False

    def could_race(self, other: Strand) -> bool:
        """Could ``other``, which took a name before, be taking it in the other order on
        replay? Not an ancestor (it started this strand after taking it), nor a descendant that
        has finished (this strand waited for it); any other strand that lived at the same time
        as this one: which of the two takes the name first is up to timing."""
        if other is self or self.descends_from(other):
            return False
        if other.descends_from(self):
            return other.ended is None
        if (
            other.parent is self.parent
            and other.allocated == 1
            and self.allocated == 0
            and other.born < self.born
        ):
            # Sibling tasks taking their first key (agent runs gathered, parallel tool calls):
            # tasks start in the order they were created, so this is program order.
            return False
        return other.ended is None or other.ended > self.born


class Scope:
    """One level of key allocation: the workflow body, a step body's try, or a branch."""

    __slots__ = ("__weakref__", "_lock", "branches", "closed", "counts", "last", "prefix", "run")

    def __init__(self, prefix: str, run: object) -> None:
        self.prefix = prefix
        self.run = run  # the execution the scope belongs to (a context can outlive a run)
        self.counts: dict[tuple[str, str], int] = {}
        self.last: dict[tuple[str, str], Strand] = {}  # who took each name last
        self.branches: dict[str, int] = {}
        self.closed = False  # a step body abandoned after its timeout: it may not go on
        self._lock = threading.Lock()

    def next_key(self, name: str, kind: Kind = "step") -> str:
        """``name`` for its first occurrence of this kind here, ``name#n`` for the n-th."""
        segment = escape(name)
        me = current_strand.get()
        name_key = (kind, segment)
        with self._lock:
            if self.closed:
                raise StepTimeout(
                    f"{self.prefix[:-1]!r} timed out and was abandoned; its body may not start "
                    f"{segment!r}"
                )
            if me is not None:
                other = self.last.get(name_key)
                if other is not None and me.could_race(other):
                    raise BranchAmbiguous(self.prefix + segment, other.label)
                self.last[name_key] = me
                me.allocated += 1
            n = self.counts.get(name_key, 0) + 1
            self.counts[name_key] = n
        return self.prefix + segment if n == 1 else f"{self.prefix}{segment}#{n}"

    def step_body(self, key: str) -> Scope:
        """The scope of one try of step ``key``'s body."""
        return Scope(key + "/", self.run)

    def branch(self, label: str, *, numbered: bool = True) -> Scope:
        """The next branch named ``label`` here (``#label``, ``#label#2`` …), or exactly
        ``#label`` when not ``numbered`` (a name the user chose, unique by their choice)."""
        segment = escape(label.replace(".<locals>", ""))
        with self._lock:
            n = self.branches.get(segment, 0) + 1
            self.branches[segment] = n
        if n > 1:
            if not numbered:
                raise ValueError(
                    f"branch {label!r} is used twice in {self.prefix[:-1] or 'the run'!r}; "
                    "each concurrent branch needs a name of its own (an item id)"
                )
            segment = f"{segment}#{n}"
        return Scope(f"{self.prefix}#{segment}/", self.run)


current_scope: ContextVar[Scope | None] = ContextVar("tidebase_scope", default=None)
"""The scope keys are allocated in here (None outside any run)."""

current_strand: ContextVar[Strand | None] = ContextVar("tidebase_strand", default=None)
"""The strand running here."""


@contextmanager
def entered(scope: Scope) -> Iterator[None]:
    """``with entered(scope):`` keys taken inside are allocated in ``scope``."""
    token = current_scope.set(scope)
    try:
        yield
    finally:
        current_scope.reset(token)
