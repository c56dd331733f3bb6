"""This project's rows in the v0.7 wire format: camelCase fields, ISO-8601 UTC timestamps with
milliseconds (as JavaScript's ``toISOString``), every upstream field present (null when this
project has no such fact)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tidebase_core.models import Event, GateInfo, StateVersion, StepInfo, UsageRecord
from tidebase_core.queue_models import WebhookAttempt

from .store import EdgeRow, RunRow, SnapshotRow, StepRow

__all__ = [
    "decode_id",
    "encode_id",
    "event_json",
    "gate_json",
    "iso",
    "run_json",
    "state_version_json",
    "step_json",
    "usage_json",
    "webhook_json",
]


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def encode_id(prefix: str, key: str) -> str:
    """A URL-safe id for a key that may hold any character (gate ``name#2``, step keys):
    ``<prefix>_<base64url of the key>``; the SDKs put ids in paths unquoted."""
    raw = base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")
    return f"{prefix}_{raw}"


def decode_id(prefix: str, value: str) -> str | None:
    """The key inside an id made by ``encode_id`` (None when it is not one)."""
    head = f"{prefix}_"
    if not value.startswith(head):
        return None
    raw = value[len(head) :]
    try:
        return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (binascii.Error, ValueError):
        return None


def run_json(run: RunRow) -> dict[str, Any]:
    cancelled = run.status == "cancelled"
    return {
        "id": run.run_id,
        "workflowName": run.workflow_name,
        "input": run.input,
        "metadata": run.metadata if run.metadata is not None else {},
        "status": run.status,
        "result": run.result,
        "error": run.error,
        "recoveryWebhook": run.recovery_webhook,
        "leaseOwner": run.owner_token,
        "leaseExpiresAt": iso(run.lease_expires_at) if run.owner_token else None,
        "attempt": run.attempt,
        "queue": run.queue,
        "dedupeKey": run.dedupe_key,
        "priority": run.priority,
        "runAt": iso(run.run_at),
        "maxAttempts": run.max_attempts if run.max_attempts is not None else 1,
        "deadlineAt": iso(run.deadline_at),
        "cancelRequestedAt": iso(run.completed_at) if cancelled else None,
        "cancelledAt": iso(run.completed_at) if cancelled else None,
        "cancelReason": run.cancel_reason if cancelled else None,
        "cancelActor": run.cancel_actor,
        "failureClass": run.failure_class,
        "createdAt": iso(run.created_at),
        "updatedAt": iso(run.updated_at),
        "completedAt": iso(run.completed_at),
    }


def event_json(run_id: str, event: Event) -> dict[str, Any]:
    return {
        "id": event.seq,
        "runId": run_id,
        "seq": event.seq,
        "type": event.type,
        "payload": event.payload,
        "createdAt": iso(event.created_at),
    }


def _step_status(step: StepInfo) -> str:
    if step.status != "failed":
        return step.status.value
    if step.resume_decision in ("failed_retryable", "manual_review"):
        return step.resume_decision
    return "failed"


def step_json(run_id: str, step: StepInfo) -> dict[str, Any]:
    return {
        "id": encode_id("step", step.name),
        "runId": run_id,
        "name": step.name,
        "inputHash": step.input_hash,
        "input": None,
        "options": {},
        "resumeContract": None,
        "resumeDecision": step.resume_decision,
        "status": _step_status(step),
        "output": step.output,
        "error": step.error,
        "leaseOwner": None,
        "leaseExpiresAt": None,
        "attempt": step.attempt,
        "startedAt": None,
        "completedAt": iso(step.updated_at) if step.status == "completed" else None,
        "createdAt": None,
        "updatedAt": iso(step.updated_at),
    }


def gate_json(
    gate: GateInfo, *, show_token: bool, expires_at: datetime | None = None
) -> dict[str, Any]:
    """A gate; its resolve token only for a reader that authenticated with the API key;
    ``expiresAt`` when it was opened with a timeout."""
    decided = gate.status != "pending"
    return {
        "id": encode_id("gate", gate.name),
        "runId": gate.run_id,
        "name": gate.name,
        "prompt": gate.prompt,
        "data": gate.data if gate.data is not None else {},
        "status": gate.status.value,
        "decision": gate.status.value if decided else None,
        "actor": gate.actor,
        "decisionPayload": gate.payload,
        "capability": None,
        "channels": [],
        "resolveToken": gate.token if show_token else None,
        "createdAt": iso(gate.created_at),
        "updatedAt": iso(gate.resolved_at or gate.created_at),
        "resolvedAt": iso(gate.resolved_at),
        "expiresAt": iso(expires_at),
    }


def state_version_json(run_id: str, version: StateVersion) -> dict[str, Any]:
    return {
        "id": f"{run_id}:run:{version.version}",
        "streamId": f"{run_id}:run",
        "runId": run_id,
        "stepId": None,
        "version": version.version,
        "value": version.value,
        "patch": None,
        "label": version.labels[-1] if version.labels else None,
        "labels": list(version.labels),
        "reason": version.reason,
        "importance": version.importance or ("milestone" if version.labels else "normal"),
        "metadata": version.metadata if version.metadata is not None else {},
        "createdBy": version.created_by,
        "createdAt": iso(version.created_at),
    }


def snapshot_json(run_id: str, snapshot: SnapshotRow) -> dict[str, Any]:
    """A snapshot as upstream's state version of its stream (always a milestone)."""
    return {
        "id": f"{run_id}:{snapshot.stream}:{snapshot.version}",
        "streamId": f"{run_id}:{snapshot.stream}",
        "runId": run_id,
        "stepId": None,
        "version": snapshot.version,
        "value": snapshot.value,
        "patch": None,
        "label": snapshot.label,
        "labels": [snapshot.label],
        "reason": snapshot.reason,
        "importance": "milestone",
        "metadata": snapshot.metadata if snapshot.metadata is not None else {},
        "createdBy": snapshot.created_by,
        "createdAt": iso(snapshot.created_at),
    }


def _number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def usage_json(record: UsageRecord, index: int) -> dict[str, Any]:
    return {
        "id": f"{record.run_id}:{index}",
        "runId": record.run_id,
        "stepId": None if record.step_name is None else encode_id("step", record.step_name),
        "stepName": record.step_name,
        "attempt": record.attempt,
        "kind": record.kind,
        "provider": record.provider,
        "model": record.model,
        "label": record.label,
        "quantity": _number(record.quantity),
        "unit": record.unit,
        "inputTokens": record.input_tokens,
        "outputTokens": record.output_tokens,
        "totalTokens": record.total_tokens,
        "costUsd": _number(record.cost_usd),
        "costSource": record.cost_source,
        "metadata": record.metadata if record.metadata is not None else {},
        "createdAt": iso(record.created_at),
    }


def protocol_step_json(run_id: str, step: StepRow) -> dict[str, Any]:
    """A step row with its lease and what the worker sent (the protocol's full step)."""
    from .contract import normalize, to_protocol

    status = step.status
    if status == "failed" and step.resume_decision in ("failed_retryable", "manual_review"):
        status = step.resume_decision
    return {
        "id": encode_id("step", step.key),
        "runId": run_id,
        "name": step.key,
        "inputHash": step.input_hash,
        "input": step.input,
        "options": step.options if step.options is not None else {},
        "resumeContract": normalize(step.options),
        "resumeDecision": to_protocol(step.resume_decision),
        "status": status,
        "output": step.output,
        "error": step.error,
        "leaseOwner": step.lease_owner,
        "leaseExpiresAt": iso(step.lease_expires_at) if step.lease_owner else None,
        "attempt": step.attempt,
        "startedAt": iso(step.started_at),
        "completedAt": iso(step.updated_at) if step.status == "completed" else None,
        "createdAt": iso(step.created_at),
        "updatedAt": iso(step.updated_at),
    }


def edge_json(edge: EdgeRow) -> dict[str, Any]:
    return {
        "id": f"{edge.parent_run_id}:{edge.name}",
        "parentRunId": edge.parent_run_id,
        "childRunId": edge.child_run_id,
        "name": edge.name,
        "edgeType": edge.edge_type,
        "metadata": edge.metadata if edge.metadata is not None else {},
        "createdAt": iso(edge.created_at),
    }


def webhook_json(
    attempt: WebhookAttempt, index: int, *, reason: str | None = None
) -> dict[str, Any]:
    """A recovery (``run.recover``) or push (``run.invoke``) webhook attempt as upstream's
    recovery attempt: delivered on a 2xx answer, else failed (``errorText`` says why)."""
    delivered = attempt.status_code is not None and 200 <= attempt.status_code < 300
    return {
        "id": f"{attempt.run_id}:webhook:{index}",
        "runId": attempt.run_id,
        # A push's reason is upstream's queue_dispatch; a recovery's is not stored (its kind).
        "reason": reason
        if reason is not None
        else ("queue_dispatch" if attempt.kind == "run.invoke" else attempt.kind),
        "kind": attempt.kind,
        "webhookUrl": attempt.url,
        "status": "delivered" if delivered else "failed",
        "httpStatus": attempt.status_code,
        "responseBody": None,
        "errorText": attempt.error,
        "createdAt": iso(attempt.created_at),
        "completedAt": iso(attempt.created_at),
    }
