"""Durable approval gates: a run waits for a human decision, made exactly once.

Generated from ``tidebase_core/_async/gates.py`` by ``tools/generate_sync.py``: edit that file, not this one.
"""

from __future__ import annotations

import builtins
import math
import secrets
import time
from typing import TYPE_CHECKING, Any

from .._run_base import check_limit, check_name, check_run_id
from ..errors import (
    GateAlreadyResolved,
    GateNotFound,
    GatePending,
    GateTimeout,
    GateTokenMismatch,
    LeaseLost,
    RunCancelled,
    RunNotFound,
)
from ..models import GateDecision, GateInfo, GateStatus
from ..serialization import encode
from ..store.records import GateRow

if TYPE_CHECKING:
    from .client import Tidebase
    from .context import RunContext

__all__ = ["Gates", "wait_at_gate"]

DECISIONS = (GateStatus.APPROVED.value, GateStatus.REJECTED.value)
# How long a waiting worker sleeps between looks when no notification arrives: a safety net
# under LISTEN/NOTIFY, not the mechanism.
_RECHECK_SECONDS = 30.0


def wait_at_gate(
    run: RunContext,
    name: str,
    prompt: str,
    *,
    data: Any,
    timeout: float | None,
    wait: bool,
) -> GateDecision:
    check_name(name, "gate name")
    if not isinstance(prompt, str):
        raise TypeError(f"gate {name!r}: prompt must be a str, got {type(prompt).__name__}")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not timeout > 0
        or not math.isfinite(timeout)
    ):
        raise ValueError(f"gate {name!r}: timeout must be a number of seconds > 0 or None")
    data_text = None if data is None else encode(data, what=f"data of gate {name!r}")
    ex = run._execution
    ex.check_live()
    db = run._db
    # The n-th gate with one name in a run is name#n, like steps: a loop over invoices asks
    # for a decision per invoice, never reuses the first one's.
    name = ex.next_key(name, "gate")

    row = db.get_gate(ex.run_id, name)
    if row is not None and row.name is not None and row.status != GateStatus.PENDING:
        return _decision(row)  # decided earlier: replay it
    if row is None or row.name is None:
        opened = db.open_gate(
            run_id=ex.run_id,
            token=ex.token,
            name=name,
            prompt=prompt,
            data=data_text,
            gate_token=secrets.token_urlsafe(24),
            payload=encode(
                {"name": name, "prompt": prompt, "data": data}, what=f"gate {name!r} event"
            ),
        )
    else:
        opened = db.reopen_gate(run_id=ex.run_id, token=ex.token)
    if not opened:
        run._refused()

    if not wait:
        parked = db.park_run(
            run_id=ex.run_id, token=ex.token, payload=encode({"gate": name}, what="event")
        )
        if not parked:
            run._refused()
        ex.parked = True
        raise GatePending(
            f"run {ex.run_id!r} is parked at gate {name!r} until someone decides: "
            f"tide.gates.resolve({ex.run_id!r}, {name!r}, 'approved', actor=...); then invoke "
            "the run again to continue past the gate"
        )

    deadline = None if timeout is None else time.monotonic() + timeout
    with run._client._store.listener(ex.run_id) as listener:
        while True:
            row = listener.db.get_gate(ex.run_id, name)
            if row is None or row.name is None:
                raise GateNotFound(ex.run_id, name)
            if row.run_status == "cancelled":  # first: a decision that raced in is void
                ex.cancelled = True
                ex.cancel_reason = row.cancel_reason
                raise RunCancelled(ex.run_id, row.cancel_reason)
            if row.status != GateStatus.PENDING:
                return _decision(row)
            if row.run_owner != ex.token:
                ex.lost = True
                raise LeaseLost(ex.run_id, f"while waiting at gate {name!r}")
            pause = _RECHECK_SECONDS
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise GateTimeout(
                        f"gate {name!r} of run {ex.run_id!r} got no decision within {timeout}s; "
                        "the gate stays open: invoke the run again to keep waiting"
                    )
                pause = min(pause, left)
            listener.wait(pause)


def _decision(row: GateRow) -> GateDecision:
    assert row.status is not None
    assert row.name is not None
    return GateDecision(
        name=row.name,
        decision=GateStatus(row.status),
        actor=row.actor,
        payload=row.payload,
        resolved_at=row.resolved_at,
    )


class Gates:
    """``tide.gates``: decide gates (exactly once), and list or look at them."""

    def __init__(self, client: Tidebase) -> None:
        self._client = client

    def resolve(
        self,
        run_id: str,
        name: str,
        decision: str,
        *,
        actor: str | None,
        token: str | None = None,
        payload: Any = None,
    ) -> GateDecision:
        """Decide gate ``name`` of run ``run_id``: ``"approved"`` or ``"rejected"``.

        Exactly once: when several resolvers race, one wins and the others get
        ``GateAlreadyResolved``. ``token`` (the gate's resolve token) is checked when given.
        The n-th gate of one name in a run is ``name#n``. A cancelled run's gates cannot be
        decided (``RunCancelled``), nor a completed run's.
        """
        check_run_id(run_id)
        check_name(name, "gate name")
        if decision not in DECISIONS:
            raise ValueError(f"decision must be 'approved' or 'rejected', got {decision!r}")
        if actor is not None and not isinstance(actor, str):
            raise TypeError(f"actor must be a str or None, got {type(actor).__name__}")
        payload_text = None if payload is None else encode(payload, what="gate payload")
        event = encode(
            {"name": name, "decision": decision, "actor": actor, "payload": payload},
            what="gate payload",
        )
        with self._client._store.connection() as db:
            won = db.resolve_gate(
                run_id=run_id,
                name=name,
                decision=decision,
                actor=actor,
                gate_token=token,
                payload=payload_text,
                event=event,
            )
            row = db.get_gate(run_id, name)
        if row is None:
            raise RunNotFound(run_id)
        if row.name is None:
            raise GateNotFound(run_id, name)
        if not won:
            if row.run_status == "cancelled":
                raise RunCancelled(run_id, row.cancel_reason)
            if row.status == GateStatus.PENDING and row.run_status == "completed":
                raise GateAlreadyResolved(
                    f"gate {name!r} of run {run_id!r} can no longer be decided: the run completed"
                )
            if row.status == GateStatus.PENDING:
                raise GateTokenMismatch(
                    f"the token given is not gate {name!r}'s resolve token (run {run_id!r})"
                )
            raise GateAlreadyResolved(
                f"gate {name!r} of run {run_id!r} was already {row.status} by "
                f"{row.actor or 'someone'} at {row.resolved_at}; a gate is decided once"
            )
        return _decision(row)

    def get(self, run_id: str, name: str) -> GateInfo:
        """One gate, with its resolve token."""
        check_run_id(run_id)
        check_name(name, "gate name")
        with self._client._store.connection() as db:
            row = db.get_gate(run_id, name)
        if row is None:
            raise RunNotFound(run_id)
        if row.name is None:
            raise GateNotFound(run_id, name)
        return GateInfo(
            run_id=run_id,
            name=row.name,
            prompt=row.prompt or "",
            data=row.data,
            status=GateStatus(row.status or GateStatus.PENDING),
            actor=row.actor,
            payload=row.payload,
            token=row.token or "",
            created_at=row.created_at,
            resolved_at=row.resolved_at,
        )

    def list(
        self,
        *,
        status: GateStatus | str | None = None,
        run_id: str | None = None,
        limit: int = 100,
    ) -> builtins.list[GateInfo]:
        """Gates, oldest first; ``status="pending"`` for those waiting for a decision."""
        if status is not None:
            try:
                status = GateStatus(status)
            except ValueError:
                raise ValueError(
                    f"unknown gate status {status!r}; use pending, approved or rejected"
                ) from None
        check_limit(limit)
        with self._client._store.connection() as db:
            return db.list_gates(
                status=None if status is None else status.value, run_id=run_id, limit=limit
            )
