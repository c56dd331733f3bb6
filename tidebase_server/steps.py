"""Remote steps: ``steps/begin`` → execute | return | locked | input_mismatch | cancelled, then
``complete`` or ``fail`` fenced by the step's lease owner.

Each step has a lease of its own (``TIDEBASE_LEASE_MS``): one worker at a time gets
``execute``; once the lease lapses another may take the step over (one more attempt) and the
first is fenced out. A step parked for manual review is not handed out again: 409
``manual_review`` until an operator retries or completes it (DESIGN §8).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from tidebase_core.serialization import encode

from . import contract
from .channels import delivers
from .deps import server
from .errors import ProtocolError, not_found, parse_body
from .routing import RawRoute as Route
from .wire import decode_id, protocol_step_json

__all__ = ["routes"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class BeginStep(_Body):
    name: str = Field(min_length=1)
    inputHash: str = Field(min_length=1)
    input: Any = None
    options: dict[str, Any] | None = None
    leaseOwner: str | None = None


class CompleteStep(_Body):
    leaseOwner: str
    output: Any = None


class FailStep(_Body):
    leaseOwner: str
    error: Any
    retryable: bool = False
    resumeDecision: str | None = None


def _step_key(request: Request) -> str:
    step_id: str = request.path_params["stepId"]
    return decode_id("step", step_id) or step_id


async def begin_step(request: Request) -> JSONResponse:
    """Begin (or replay) a step; the answer's ``action`` tells the worker what to do."""
    srv = server(request)
    run_id = request.path_params["runId"]
    body = await parse_body(request, BeginStep)
    owner = body.leaseOwner or str(uuid.uuid4())
    async with srv.store.transaction() as tx:
        locked = await tx.lock_run(run_id)
        if locked is None:
            raise not_found("run")
        if locked.status == "cancelled":
            return JSONResponse({"action": "cancelled"})
        step = await tx.get_step(run_id, body.name)
        if step is not None and step.input_hash != body.inputHash:
            return JSONResponse(
                {
                    "action": "input_mismatch",
                    "step": protocol_step_json(run_id, step),
                    "expectedInputHash": step.input_hash,
                    "actualInputHash": body.inputHash,
                }
            )
        if step is not None and step.status == "completed":
            return JSONResponse(
                {
                    "action": "return",
                    "step": protocol_step_json(run_id, step),
                    "output": step.output,
                }
            )
        if step is not None and step.leased and step.lease_owner != owner:
            return JSONResponse({"action": "locked", "step": protocol_step_json(run_id, step)})
        if step is not None and step.status == "failed" and step.resume_decision == "manual_review":
            raise ProtocolError(
                409,
                f"step {body.name!r} is parked for manual review: retry or complete it by hand "
                "(tidebase runs retry-step / complete-step) before it can run again",
                code="manual_review",
                step=protocol_step_json(run_id, step),
            )
        options = {} if body.options is None else body.options
        begun = await tx.begin_step(
            run_id,
            body.name,
            input_hash=body.inputHash,
            input=encode({} if body.input is None else body.input, what="step input"),
            options=encode(options, what="step options"),
            owner=owner,
        )
        step_json = protocol_step_json(run_id, begun)
        await tx.append_event(
            run_id,
            "step.started",
            encode(
                {
                    "stepId": step_json["id"],
                    "name": body.name,
                    "attempt": begun.attempt,
                    "resumeContract": step_json["resumeContract"],
                },
                what="event",
            ),
        )
    return JSONResponse({"action": "execute", "step": step_json, "leaseOwner": owner})


async def complete_step(request: Request) -> JSONResponse:
    """Record the step's output; 409 unless the caller holds the step's lease."""
    srv = server(request)
    run_id = request.path_params["runId"]
    key = _step_key(request)
    body = await parse_body(request, CompleteStep)
    output = encode(body.output, what="step output")
    async with srv.store.transaction() as tx:
        locked = await tx.lock_run(run_id)
        if locked is None:
            raise not_found("run")
        step = await tx.get_step(run_id, key)
        if step is None or step.status != "running" or step.lease_owner != body.leaseOwner:
            raise ProtocolError(409, "step not found or lease lost", code="lease_lost")
        if locked.status == "cancelled":  # the body ran, but a cancelled run takes no result
            raise ProtocolError(409, "run is cancelled", code="run_cancelled")
        done = await tx.complete_step(run_id, key, output)
    return JSONResponse({"step": protocol_step_json(run_id, done)})


@delivers
async def fail_step(request: Request) -> JSONResponse:
    """Record a failure and its resume decision; 409 unless the caller holds the lease."""
    srv = server(request)
    run_id = request.path_params["runId"]
    key = _step_key(request)
    body = await parse_body(request, FailStep)
    if body.resumeDecision is not None and body.resumeDecision not in contract.DECISIONS:
        raise ProtocolError(
            400,
            "invalid request body",
            code="invalid_request",
            issues=[
                {"path": ["resumeDecision"], "message": f"expected one of {contract.DECISIONS}"}
            ],
        )
    error = encode(body.error, what="step error")
    async with srv.store.transaction() as tx:
        locked = await tx.lock_run(run_id)
        if locked is None:
            raise not_found("run")
        step = await tx.get_step(run_id, key)
        if step is None or step.status != "running" or step.lease_owner != body.leaseOwner:
            raise ProtocolError(409, "step not found or lease lost", code="lease_lost")
        decision = body.resumeDecision or contract.classify(step.options, body.retryable)
        failed = await tx.fail_step(run_id, key, error, contract.to_project(decision))
        step_json = protocol_step_json(run_id, failed)
        await tx.append_event(
            run_id,
            "step.failed",
            encode(
                {
                    "stepId": step_json["id"],
                    "name": key,
                    "retryable": body.retryable,
                    "resumeDecision": decision,
                    "resumeContract": step_json["resumeContract"],
                    "error": body.error,
                },
                what="event",
            ),
        )
    return JSONResponse({"step": step_json})


routes = [
    Route("/runs/{runId}/steps/begin", begin_step, methods=["POST"]),
    Route("/runs/{runId}/steps/{stepId}/complete", complete_step, methods=["POST"]),
    Route("/runs/{runId}/steps/{stepId}/fail", fail_step, methods=["POST"]),
]
