"""Queues: ``tide.enqueue`` (a run with status ``queued``) and ``tide.queues``.

Generated from ``tidebase_core/_async/queues.py`` by ``tools/generate_sync.py``: edit that file, not this one.
"""

from __future__ import annotations

import builtins
import contextlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._run_base import check_name, new_run_id
from ..budgets import Budget
from ..errors import RunNotFound
from ..queue_models import Enqueued, QueueInfo
from ..registry import UnknownWorkflow, lookup
from ..serialization import encode, encode_with_hash
from .queue_store import QueueStore

if TYPE_CHECKING:
    from .client import Tidebase

__all__ = ["Queues", "check_url", "enqueue"]

_DEDUPE_RACES = 20


def _check_count(value: object, what: str, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{what} must be an int >= {minimum} or None, got {value!r}")
    return value


def _check_seconds(value: object, what: str) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"{what} must be a number of seconds >= 0 or None, got {value!r}")
    return float(value)


def check_url(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"{what} must be an http(s) URL or None, got {value!r:.100}")
    return value


def _check_run_at(value: object) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"run_at {value!r} is not an ISO 8601 time; e.g. '2026-01-01T03:00:00Z'"
            ) from None
    if not isinstance(value, datetime):
        raise TypeError(f"run_at must be a datetime or ISO 8601 str, got {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # naive times are UTC, like cron
    return value


def enqueue_params(
    workflow_name: str,
    *,
    queue: str,
    input: Any,
    metadata: Mapping[str, Any] | None = None,
    dedupe_key: str | None = None,
    delay_s: float | None = None,
    run_at: datetime | str | None = None,
    max_attempts: int | None = None,
    priority: int | None = None,
    deadline_s: float | None = None,
    recovery_webhook: str | None = None,
    run_id: str | None = None,
    budget: Budget | None = None,
) -> dict[str, Any]:
    """Check an enqueue's arguments; the enqueue statement's parameters (JSON as text)."""
    check_name(workflow_name, "workflow name")
    check_name(queue, "queue name")
    if dedupe_key is not None:
        check_name(dedupe_key, "dedupe_key")
    if delay_s is not None and run_at is not None:
        raise ValueError("give delay_s or run_at, not both")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise ValueError(f"priority must be an int (higher runs first), got {priority!r}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    caps = Budget.coerce(budget)
    if caps is None:  # the @workflow(budget=...) of the workflow, when registered here
        with contextlib.suppress(UnknownWorkflow):
            caps = lookup(workflow_name).budget
    run_id = new_run_id() if run_id is None else run_id
    input_text, in_hash = encode_with_hash(input, what=f"input of run {run_id!r}")
    return {
        "run_id": run_id,
        "workflow": workflow_name,
        "input": input_text,
        "input_hash": in_hash,
        "metadata": None if metadata is None else encode(metadata, what="run metadata"),
        "queue": queue,
        "dedupe_key": dedupe_key,
        "priority": priority or 0,
        "run_at": _check_run_at(run_at),
        "delay": _check_seconds(delay_s, "delay_s") or 0.0,
        "max_attempts": _check_count(max_attempts, "max_attempts", 1) or 1,
        "deadline": _check_seconds(deadline_s, "deadline_s"),
        "recovery_webhook": check_url(recovery_webhook, "recovery_webhook"),
        "payload": encode({"queue": queue, "dedupe_key": dedupe_key}, what="event"),
        "budget": None if caps is None else caps.to_json(),
        "holders": None if caps is None else [run_id],
    }


def enqueue(client: Tidebase, workflow_name: str, **options: Any) -> Enqueued:
    params = enqueue_params(workflow_name, **options)
    with client._store.connection() as db:
        qs = QueueStore(db)
        for _ in range(_DEDUPE_RACES):
            run_id = qs.enqueue(params)
            deduplicated = run_id is None
            if run_id is None and params["dedupe_key"] is not None:
                run_id = qs.active_by_dedupe(params["queue"], params["dedupe_key"])
                if run_id is None:
                    continue  # the holder finished between our two statements: try again
            if run_id is None:  # our own id existed already (a retried enqueue): that run
                run_id = params["run_id"]
            run = db.get_run(run_id)
            if run is None:
                raise RunNotFound(run_id)
            return Enqueued(run=run, deduplicated=deduplicated)
    raise RuntimeError(f"enqueue of {workflow_name!r}: the dedupe key kept changing hands")


class Queues:
    """``tide.queues``: caps and push URLs per queue, and what is in them."""

    def __init__(self, client: Tidebase) -> None:
        self._client = client

    def configure(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        rate_per_minute: int | None = None,
        invoke_url: str | None = None,
    ) -> QueueInfo:
        """Caps that hold across every worker: at most ``concurrency`` runs of the queue running
        at once, at most ``rate_per_minute`` claims in any 60 s. ``invoke_url``: a push queue
        (the reconciler POSTs a signed ``run.invoke`` for each ready run). None lifts a cap."""
        check_name(name, "queue name")
        concurrency = _check_count(concurrency, "concurrency", 1)
        rate_per_minute = _check_count(rate_per_minute, "rate_per_minute", 1)
        invoke_url = check_url(invoke_url, "invoke_url")
        with self._client._store.connection() as db:
            QueueStore(db).upsert_queue(
                name=name, concurrency=concurrency, rate=rate_per_minute, invoke_url=invoke_url
            )
        for info in self.list():
            if info.name == name:
                return info
        raise RuntimeError(f"queue {name!r} vanished while being configured")

    def list(self) -> builtins.list[QueueInfo]:
        """Every configured queue and every queue with active runs: depth, running, caps."""
        with self._client._store.connection() as db:
            rows = QueueStore(db).list_queues()
        return [
            QueueInfo(
                name=r[0],
                concurrency=r[1],
                rate_per_minute=r[2],
                invoke_url=r[3],
                depth=r[4],
                running=r[5],
            )
            for r in rows
        ]
