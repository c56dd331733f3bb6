"""``tide.runs.create``, ``tide.runs.recover`` and the webhook attempt log.

This is the async source; ``tidebase_core/_sync/queue_ops.py`` is generated from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._run_base import check_name, check_run_id, new_run_id
from ..budgets import Budget
from ..errors import RunLocked, RunNotFound, WorkflowMismatch
from ..models import RunInfo
from ..owner import process_is_gone
from ..queue_models import WebhookAttempt
from ..serialization import encode, encode_with_hash
from .queue_store import AsyncQueueStore
from .queues import check_url

if TYPE_CHECKING:
    from .client import AsyncTidebase

__all__ = ["create_run", "list_webhooks", "recover_run"]


async def create_run(
    client: AsyncTidebase,
    workflow_name: str,
    *,
    input: Any = None,
    metadata: Mapping[str, Any] | None = None,
    recovery_webhook: str | None = None,
    run_id: str | None = None,
    budget: Budget | None = None,
) -> RunInfo:
    check_name(workflow_name, "workflow name")
    caps = Budget.coerce(budget)
    run_id = new_run_id() if run_id is None else check_run_id(run_id)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    input_text, in_hash = encode_with_hash(input, what=f"input of run {run_id!r}")
    async with client._store.connection() as db:
        await AsyncQueueStore(db).create_run(
            {
                "run_id": run_id,
                "workflow": workflow_name,
                "input": input_text,
                "input_hash": in_hash,
                "metadata": None if metadata is None else encode(metadata, what="run metadata"),
                "recovery_webhook": check_url(recovery_webhook, "recovery_webhook"),
                "budget": None if caps is None else caps.to_json(),
                "holders": None if caps is None else [run_id],
            }
        )
        run = await db.get_run(run_id)
    if run is None:
        raise RunNotFound(run_id)
    if run.workflow_name != workflow_name:
        raise WorkflowMismatch(run_id, workflow_name, run.workflow_name)
    return run


async def recover_run(client: AsyncTidebase, run_id: str, *, reason: str) -> RunInfo:
    check_run_id(run_id)
    check_name(reason, "recover reason")
    async with client._store.connection() as db:
        qs = AsyncQueueStore(db)
        found = await qs.run_owner(run_id)
        if found is None:
            raise RunNotFound(run_id)
        status, token, host, pid, started, expired, expires_in = found[:7]
        webhook, queue, workflow = found[7], found[8], found[9]
        void = None
        if token is not None and not expired:
            if not process_is_gone(host, pid, started):
                raise RunLocked(
                    run_id, host=(host or "").split("|")[0] or None, pid=pid, expires_in=expires_in
                )
            void = token  # its process died on this host: the lease is void
        recovered = await qs.recover_run(run_id=run_id, reason=reason, void_token=void)
        run = await db.get_run(run_id)
    assert run is not None
    if recovered and webhook and queue is None:
        from .reconciler import AsyncReconciler

        async with client._store.connection() as db:
            await AsyncReconciler(client)._recovery_webhook(
                AsyncQueueStore(db),
                run_id,
                workflow,
                None if run.input is None else encode(run.input, what="run input"),
                webhook,
                reason,
                throttled=False,  # an operator asked for it now
            )
    del status
    return run


async def list_webhooks(client: AsyncTidebase, run_id: str) -> list[WebhookAttempt]:
    check_run_id(run_id)
    async with client._store.connection() as db:
        rows = await AsyncQueueStore(db).list_webhooks(run_id)
    return [
        WebhookAttempt(
            run_id=r[0], kind=r[1], url=r[2], status_code=r[3], error=r[4], created_at=r[5]
        )
        for r in rows
    ]
