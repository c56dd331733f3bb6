"""Child runs: sub-agents as runs of their own, linked to their parent by an edge name.

This is the async source; ``tidebase_core/_sync/children.py`` is generated from it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._acompat import gather
from .._run_base import MAX_RUN_ID_BYTES, check_name
from ..budgets import Budget

if TYPE_CHECKING:
    from .context import AsyncRunContext

__all__ = ["child_run_id", "run_child", "run_fanout"]

_MAX_PARALLEL = 8


def child_run_id(parent_run_id: str, edge: str) -> str:
    """The child's run id: readable when it fits, hashed when it would be too long."""
    run_id = f"{parent_run_id}/{edge}"
    if len(run_id.encode()) <= MAX_RUN_ID_BYTES:
        return run_id
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:32]
    head = parent_run_id.encode()[:180].decode("utf-8", "ignore")
    return f"{head}/{digest}"


async def run_child(
    run: AsyncRunContext,
    edge: str,
    workflow: str,
    fn: Callable[[AsyncRunContext, Any], Any],
    *,
    input: Any,
    output_type: Any = None,
    budget: Budget | None = None,
) -> Any:
    check_name(edge, "child name")
    check_name(workflow, "child workflow name")
    if not callable(fn):
        raise TypeError(f"child {edge!r}: fn must be callable as fn(run, input)")
    ex = run._execution
    ex.check_live()
    child_id = child_run_id(ex.run_id, edge)
    created = await run._db.create_edge(
        run_id=ex.run_id, token=ex.token, edge=edge, child_run_id=child_id
    )
    if not created and await run._db.edge_child(ex.run_id, edge) is None:
        await run._refused()  # no edge, and none was written: the lease is gone
    # The child claims its own lease; if a racing worker runs it, wait and take its result.
    # It draws from every budget its parent draws from (and from its own ``budget``, if any).
    return await run._client._run(
        workflow,
        fn,
        run_id=child_id,
        input=input,
        wait=True,
        output_type=output_type,
        budget=budget,
        parent=ex.run_id,
    )


async def run_fanout(
    run: AsyncRunContext,
    name: str,
    children: Sequence[tuple[str, Callable[[AsyncRunContext, Any], Any], Any] | Mapping[str, Any]],
    *,
    max_parallel: int | None,
) -> list[Any]:
    check_name(name, "fanout name")
    seen: set[str] = set()
    entries = [_fanout_entry(name, entry) for entry in children]
    for entry in entries:
        if entry[0] in seen:
            raise ValueError(f"fanout {name!r}: child name {entry[0]!r} appears twice")
        seen.add(entry[0])
    limit = max_parallel or min(_MAX_PARALLEL, max(1, run._client.settings.max_connections - 2))

    def call(
        child_name: str, fn: Callable[[AsyncRunContext, Any], Any], input: Any, workflow: str
    ) -> Any:
        return lambda: run_child(run, f"{name}/{child_name}", workflow, fn, input=input)

    outcomes = await gather([call(*entry) for entry in entries], limit)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


def _fanout_entry(
    name: str, entry: object
) -> tuple[str, Callable[[AsyncRunContext, Any], Any], Any, str]:
    """``(child_name, fn, input, workflow_name)`` from a tuple or the official SDK's dict."""
    if isinstance(entry, tuple) and len(entry) == 3:
        return entry[0], entry[1], entry[2], entry[0]
    if isinstance(entry, Mapping) and "name" in entry and "workflow" in entry:
        child_name = entry["name"]
        return (
            child_name,
            entry["workflow"],
            entry.get("input"),
            entry.get("workflow_name") or child_name,
        )
    raise TypeError(
        f"fanout {name!r}: each child is a (child_name, fn, input) tuple or a dict "
        f"{{'name': ..., 'workflow': fn, 'input': ...}}, got {entry!r:.80}"
    )
