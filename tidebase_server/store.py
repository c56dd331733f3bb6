"""The protocol's own reads and writes, on the client's store (SQL lives in
``tidebase_core.store.protocol_queries``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidebase_core._async.client import AsyncTidebase
from tidebase_core.serialization import decode_json
from tidebase_core.store.adapters import ExactJson, JsonText
from tidebase_core.store.protocol_queries import ProtocolQueries

__all__ = ["ProtocolStore", "RunRow"]


@dataclass(frozen=True)
class RunRow:
    run_id: str
    workflow_name: str
    status: str
    input: Any
    result: Any
    error: Any
    attempt: int
    failure_class: str | None
    metadata: Any
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    lease_expires_at: datetime | None
    owner_token: str | None
    cancel_reason: str | None
    cancel_actor: str | None


def _row(r: tuple[Any, ...]) -> RunRow:
    return RunRow(
        run_id=r[0],
        workflow_name=r[1],
        status=r[2],
        input=decode_json(r[3]),
        result=decode_json(r[4]),
        error=decode_json(r[5]),
        attempt=r[6],
        failure_class=r[7],
        metadata=decode_json(r[8]),
        created_at=r[9],
        updated_at=r[10],
        completed_at=r[11],
        lease_expires_at=r[12],
        owner_token=None if r[13] is None else str(r[13]),
        cancel_reason=r[14],
        cancel_actor=r[15],
    )


class ProtocolStore:
    """Statements of the HTTP protocol, run on the pool of the server's ``AsyncTidebase``."""

    def __init__(self, tide: AsyncTidebase) -> None:
        self._tide = tide
        self.q = ProtocolQueries.for_schema(tide.settings.schema)

    async def create_run(
        self,
        *,
        run_id: str,
        workflow: str,
        input: str,
        input_hash: str,
        metadata: str | None,
        payload: str,
    ) -> bool:
        """Insert a pending run with its ``run.created`` event; False if the id is taken."""
        async with self._tide._store.connection() as db:
            rows = await db._write(
                self.q.create_run,
                {
                    "run_id": run_id,
                    "workflow": workflow,
                    "input": ExactJson(input),
                    "input_hash": input_hash,
                    "metadata": None if metadata is None else JsonText(metadata),
                    "payload": JsonText(payload),
                },
            )
        return bool(rows)

    async def get_run(self, run_id: str) -> RunRow | None:
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.get_run_row, {"run_id": run_id})
        return _row(rows[0]) if rows else None

    async def list_runs(self, *, limit: int) -> list[RunRow]:
        async with self._tide._store.connection() as db:
            rows = await db._read(self.q.list_run_rows, {"limit": limit})
        return [_row(r) for r in rows]
