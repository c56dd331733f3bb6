"""Lease renewal: one background thread per client extends the lease of every run it executes.

A thread, for the async client too: a step that blocks the event loop (a sync LLM call inside an
async workflow) must not let the lease lapse while the worker is alive. It renews over a
connection of its own, not one from the pool the runs hold: however many runs (or sync steps
in threads) hold every pooled connection, the live worker's leases are renewed. The renewal is
also how a worker learns, without any extra read per step, that its run was cancelled or taken
over.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable

from ._run_base import Execution
from ._sync.store import Store, StoreConnection
from .settings import redact_dsn

__all__ = ["Heartbeat"]

log = logging.getLogger("tidebase.heartbeat")


class Heartbeat:
    def __init__(self, store: Callable[[], Store], lease_seconds: float) -> None:
        self._store = store
        self.lease_seconds = lease_seconds
        self.interval = max(lease_seconds / 3, 0.05)
        self._executions: dict[uuid.UUID, Execution] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._db: StoreConnection | None = None  # used by the heartbeat thread only

    def track(self, state: Execution) -> None:
        with self._lock:
            self._executions[state.token] = state
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._loop, name="tidebase-heartbeat", daemon=True
                )
                self._thread.start()

    def untrack(self, state: Execution) -> None:
        with self._lock:
            self._executions.pop(state.token, None)

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self._thread = None

    def beat(self) -> None:
        """Renew every tracked lease once, flagging runs cancelled or taken over."""
        with self._lock:
            held = list(self._executions.values())
        if not held:
            return
        db = self._db
        if db is None:
            db = self._db = self._store().dedicated()
        try:
            ours = db.renew_leases(
                lease=self.lease_seconds, held=[(s.run_id, s.token) for s in held]
            )
            missing = [s for s in held if s.run_id not in ours]
            if not missing:
                return
            states = db.lease_states([s.run_id for s in missing])
        except BaseException:
            self._close()
            raise
        for s in missing:
            now = states.get(s.run_id)
            if now is None or now.owner_token != s.token:
                s.lost = True
            elif now.status == "cancelled":
                s.cancel_reason = now.cancel_reason
                s.cancelled = True

    def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):
                db.release()

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self.interval):
                try:
                    self.beat()
                except Exception as exc:  # the database may be away; try again next beat
                    log.warning(
                        "lease renewal failed, retrying in %.1fs: %s",
                        self.interval,
                        redact_dsn(str(exc)),
                    )
        finally:
            self._close()
