"""The official SDK's run surfaces on a run context: ``run.gates`` (non-blocking gates) and
``run.snapshots`` (labeled state versions).

Generated from ``tidebase_core/_async/run_extras.py`` by ``tools/generate_sync.py``: edit that file, not this one.
"""

from __future__ import annotations

import builtins
import secrets
from typing import TYPE_CHECKING, Any

from .._run_base import check_name
from ..errors import RunCancelled
from ..models import GateInfo, StateVersion
from ..serialization import encode

if TYPE_CHECKING:
    from .context import RunContext

__all__ = ["RunGates", "Snapshots"]


class RunGates:
    """``run.gates``: open a gate without blocking on it, and look at it later.

    For callers that cannot wait for a human (an HTTP handler, a bot, a session): ``begin``
    opens the gate (the run is ``waiting`` while it is pending, and keeps its lease) and returns
    at once; ``get`` polls it. ``run.gate(...)`` is the blocking convenience on the same rows.
    """

    def __init__(self, run: RunContext) -> None:
        self._run = run

    def begin(
        self,
        name: str,
        prompt: str,
        *,
        data: Any = None,
        timeout_s: float | None = None,
    ) -> GateInfo:
        """Open (or rejoin) the gate ``name``; idempotent per name within the run, so a
        resolved gate returns its decision at once and retried callers converge.
        ``gate_id`` for ``get`` is the gate's name."""
        del timeout_s  # accepted for the official SDK's signature; gates here do not expire
        check_name(name, "gate name")
        if not isinstance(prompt, str):
            raise TypeError(f"gate {name!r}: prompt must be a str, got {type(prompt).__name__}")
        run = self._run
        ex = run._execution
        ex.check_live()
        row = run._db.get_gate(ex.run_id, name)
        if row is None or row.name is None:
            opened = run._db.open_gate(
                run_id=ex.run_id,
                token=ex.token,
                name=name,
                prompt=prompt,
                data=None if data is None else encode(data, what=f"data of gate {name!r}"),
                gate_token=secrets.token_urlsafe(24),
                payload=encode(
                    {"name": name, "prompt": prompt, "data": data}, what=f"gate {name!r} event"
                ),
            )
            if not opened:
                run._refused()
        return self.get(name)

    def get(self, gate_id: str) -> GateInfo:
        """The gate as it is now (pending, approved or rejected). A cancelled run raises
        ``RunCancelled``."""
        run = self._run
        info = run._client.gates.get(run.run_id, gate_id)
        found = run._db.get_run(run.run_id)
        if found is not None and found.status == "cancelled":
            raise RunCancelled(run.run_id, None)
        return info


class Snapshots:
    """``run.snapshots``: named snapshots of the run's live state (labeled state versions)."""

    def __init__(self, run: RunContext) -> None:
        self._run = run

    def create(self, label: str) -> StateVersion | None:
        """Label the current state version ``label``; returns that version."""
        self._run.state.save(label)
        for version in reversed(self._run.state.versions(labeled=True)):
            if label in version.labels:
                return version
        return None

    def list(self) -> builtins.list[StateVersion]:
        return self._run.state.versions(labeled=True)
