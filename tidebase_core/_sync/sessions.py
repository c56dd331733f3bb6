"""Session runs: ``tide.runs.attach`` for work that is not one function.

A ``RunSession`` is a run context (step, gate, gates, state, events, usage, snapshots) that
holds the run's lease (renewed by the client's heartbeat) until ``complete``, ``fail`` or
``close``. If the process dies the lease is void at once on this host (expires across hosts),
and the run can be attached again, or recovered like any other.

Generated from ``tidebase_core/_async/sessions.py`` by ``tools/generate_sync.py``: edit that file, not this one.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from .._run_base import check_name, check_run_id, new_run_id
from ..errors import LeaseLost, RunNotFound, TidebaseError
from ..models import RunInfo
from ..owner import let_go
from ..serialization import decode_json, encode, type_tag
from ..store.records import ClaimRequest
from .context import RunContext
from .queue_store import QueueStore

if TYPE_CHECKING:
    from .client import Tidebase

__all__ = ["RunSession", "SessionClosed", "attach"]


class SessionClosed(TidebaseError):
    """The session already completed, failed or closed: it holds no lease any more."""


class RunSession(RunContext):
    """A run handle for session-shaped work; see the module docstring."""

    _stack: ExitStack
    _open: bool

    def complete(self, result: Any = None) -> RunInfo:
        """Record the run as completed with ``result`` and give the lease back."""
        self._check_open()
        ex = self._execution
        try:
            done = self._db.complete_run(
                run_id=ex.run_id,
                token=ex.token,
                attempt=ex.attempt,
                result=encode(result, what=f"result of run {ex.run_id!r}"),
                result_type=type_tag(result),
                payload=encode({"attempt": ex.attempt}, what="event"),
            )
            if not done:
                self._refused()
            return self._info()
        finally:
            self._end()

    def fail(self, error: BaseException | str) -> RunInfo:
        """Record the run as failed with ``error`` (an exception or a message)."""
        self._check_open()
        exc = error if isinstance(error, BaseException) else RuntimeError(str(error))
        try:
            self._client._fail(self._db, self._execution, exc)
            return self._info()
        finally:
            self._end()

    def heartbeat(self) -> None:
        """Renew the lease once (the client's heartbeat also does, on its own). Raises
        ``LeaseLost`` if the run is no longer this session's, ``SessionClosed`` after
        ``complete``/``fail``/``close``."""
        self._check_open()
        ex = self._execution
        held = self._db.renew_leases(lease=ex.lease_seconds, held=[(ex.run_id, ex.token)])
        if ex.run_id not in held:
            raise LeaseLost(ex.run_id, "the session's lease was taken over or the run ended")

    def close(self) -> None:
        """Stop holding the run without finishing it: the lease is given back at once and the
        run is left ``pending`` (``queued`` for a queued run) for whoever re-invokes it."""
        if not self._open:
            return
        ex = self._execution
        try:
            released = QueueStore(self._db).recover_run(
                run_id=ex.run_id, reason="session_closed", void_token=ex.token
            )
            if not released:  # waiting at a gate: keep the status, give the lease back
                self._db.release_run(run_id=ex.run_id, token=ex.token)
        finally:
            self._end()

    def _info(self) -> RunInfo:
        run = self._db.get_run(self._execution.run_id)
        if run is None:
            raise RunNotFound(self._execution.run_id)
        return run

    def _check_open(self) -> None:
        if not self._open:
            raise SessionClosed(
                f"the session on run {self._execution.run_id!r} is already finished or closed; "
                "attach again with tide.runs.attach(name, run_id=...)"
            )

    def _end(self) -> None:
        self._open = False
        self._client._heartbeat.untrack(self._execution)
        let_go(self._execution.token)
        self._stack.close()

    def __enter__(self) -> RunSession:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._open:
            return
        if exc is not None and isinstance(exc, Exception):
            self.fail(exc)
        else:
            self.close()


def attach(
    client: Tidebase,
    workflow_name: str,
    *,
    run_id: str | None = None,
    input: Any = None,
    metadata: Mapping[str, Any] | None = None,
    recovery_webhook: str | None = None,
    heartbeat_s: float | None = 20.0,
) -> RunSession:
    """Take the lease of run ``run_id`` of ``workflow_name`` (a new run without one) and return
    a session on it. A run another live process holds raises ``RunLocked``; a completed one
    raises ``RunCompleted``-style ``TidebaseError``. ``heartbeat_s`` is accepted for the
    official SDK's signature: the client's heartbeat renews every lease it holds."""
    del heartbeat_s
    check_name(workflow_name, "workflow name")
    run_id = new_run_id() if run_id is None else check_run_id(run_id)
    client._after_fork()
    request = ClaimRequest.new(
        run_id=run_id,
        workflow=workflow_name,
        input=input,
        metadata=metadata,
        lease=client.settings.lease_seconds,
    )
    owner = request.owner
    stack = ExitStack()
    try:
        db = stack.enter_context(client._store.connection())
        claim = client._claim(db, request, wait=False)
        if not claim.claimed:
            raise TidebaseError(
                f"run {run_id!r} is already completed; a session cannot attach to it "
                "(read its result with tide.runs.get)"
            )
        if recovery_webhook is not None:
            QueueStore(db).set_recovery_webhook(run_id, recovery_webhook)
        state = client._execution(db, run_id, workflow_name, owner, claim)
        run_input = input if request.check_input else decode_json(claim.input)
        session = RunSession(client, state, db, run_input)
    except BaseException:
        let_go(owner.token)
        stack.close()
        raise
    session._stack = stack
    session._open = True
    client._heartbeat.track(state)
    return session
