"""Child runs, idempotent by edge name: a resumed parent asking again for child ``name`` gets
the same child run (``created: false``). Children are ordinary runs: a cancelled parent's
unfinished children are cancelled with it."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from tidebase_core.serialization import encode, encode_with_hash

from .channels import ChannelSpec, add_channels, checked
from .deps import server
from .errors import ProtocolError, check_url, parse_body
from .routing import RawRoute as Route
from .wire import edge_json, run_json

__all__ = ["routes"]


class CreateChild(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1)
    workflowName: str = Field(min_length=1)
    input: Any = None
    metadata: dict[str, Any] | None = None
    recoveryWebhook: str | None = None
    channels: list[ChannelSpec] | None = None
    edgeType: str | None = Field(default=None, min_length=1)
    edgeMetadata: dict[str, Any] | None = None


async def create_child(request: Request) -> JSONResponse:
    """Create (or find) the child run on edge ``name``: ``{run, edge, created}``."""
    srv = server(request)
    parent = request.path_params["runId"]
    body = await parse_body(request, CreateChild)
    specs = checked(body.channels)
    webhook = check_url(body.recoveryWebhook, "recoveryWebhook")
    child_input = {} if body.input is None else body.input
    input_text, input_hash = encode_with_hash(child_input, what="child run input")
    async with srv.store.transaction() as tx:
        locked = await tx.lock_run(parent)
        if locked is None:
            raise ProtocolError(404, "parent run not found", code="not_found")
        edge = await tx.get_edge(parent, body.name)
        created = edge is None
        if edge is None:
            if locked.status == "cancelled":
                raise ProtocolError(409, "run is cancelled", code="run_cancelled")
            child_id = f"run_{uuid.uuid4().hex}"
            metadata = {**(body.metadata or {}), "parentRunId": parent, "parentEdgeName": body.name}
            edge = await tx.create_child(
                parent,
                body.name,
                child_run_id=child_id,
                workflow=body.workflowName,
                input=input_text,
                input_hash=input_hash,
                metadata=encode(metadata, what="child run metadata"),
                created_payload=encode(
                    {
                        "workflowName": body.workflowName,
                        "input": child_input,
                        "parentRunId": parent,
                        "edgeName": body.name,
                        "channels": [
                            {"type": c.type, "url": c.url, "events": c.events or []} for c in specs
                        ],
                    },
                    what="event",
                ),
                edge_type=body.edgeType or "child",
                edge_metadata=encode(body.edgeMetadata or {}, what="edge metadata"),
                recovery_webhook=webhook,
            )
            await add_channels(tx, child_id, specs)
            await tx.append_event(
                parent,
                "run.child.created",
                encode({"childRunId": child_id, "edge": edge_json(edge)}, what="event"),
            )
    child = await srv.store.get_run(edge.child_run_id)
    if child is None:  # an in-process edge to a run not created yet
        raise ProtocolError(409, "child run not created yet", code="child_pending")
    return JSONResponse({"run": run_json(child), "edge": edge_json(edge), "created": created})


routes = [Route("/runs/{runId}/children", create_child, methods=["POST"])]
