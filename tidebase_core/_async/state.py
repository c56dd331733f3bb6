"""Live state: what a UI shows while an agent works (phase, progress, partial results).

This is the async source; ``tidebase_core/_sync/state.py`` is generated from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._run_base import check_name
from ..errors import StateEmpty
from ..models import StateVersion
from ..serialization import encode
from ..store.records import NO_NOTE, StateNote

if TYPE_CHECKING:
    from .context import AsyncRunContext

__all__ = ["AsyncLiveState"]


class AsyncLiveState:
    """``run.state``: every update appends a version; ``save(label)`` names the current one.

    Updates made in the workflow body are not repeated when a resumed run replays them; updates
    made inside a step body belong to that step's (real) execution.
    """

    def __init__(self, run: AsyncRunContext) -> None:
        self._run = run

    async def set(
        self,
        value: Any,
        *,
        reason: str | None = None,
        importance: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_by: str | None = None,
    ) -> None:
        """Replace the state with ``value``. ``reason``, ``importance`` (``"transient"``,
        ``"normal"``, ``"checkpoint"``, ``"milestone"``), ``metadata`` and ``created_by``
        describe the version this makes (``versions()`` shows them)."""
        note = StateNote.of(
            reason=reason, importance=importance, metadata=metadata, created_by=created_by
        )
        await self._update(encode(value, what="run state"), patch=False, note=note)

    async def patch(
        self,
        changes: Mapping[str, Any],
        *,
        reason: str | None = None,
        importance: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_by: str | None = None,
    ) -> None:
        """Apply ``changes`` as a JSON merge patch (RFC 7386): nested objects merge, ``None``
        removes a key, anything else replaces. Applied in the database, so concurrent patches
        never lose each other's changes. The other arguments: as ``set``'s."""
        if not isinstance(changes, Mapping):
            raise TypeError(
                f"state.patch takes a dict (a JSON merge patch), got {type(changes).__name__}; "
                "use state.set to replace the whole state"
            )
        note = StateNote.of(
            reason=reason, importance=importance, metadata=metadata, created_by=created_by
        )
        await self._update(encode(changes, what="state patch"), patch=True, note=note)

    async def get(self) -> Any:
        """The current value (None before the first update).

        While a resumed run replays what earlier attempts did, the value as it was at that
        point of the run, so the body sees what it saw the first time.
        """
        ex = self._run._execution
        if ex.replaying:
            found = await self._run._db.get_state_at(ex.run_id, ex.position)
        else:
            found = await self._run._db.get_state(ex.run_id)
        return None if found is None else found[1]

    async def save(self, label: str) -> None:
        """Label the current version (a snapshot) without changing the value."""
        check_name(label, "state label")
        ex = self._run._execution
        perform, op_key = ex.next_op(f"state.save:{label}")
        if not perform:
            return
        version = await self._run._db.save_state(
            run_id=ex.run_id, token=ex.token, label=label, op_key=op_key
        )
        if version is None:
            if await self._run._db.get_state(ex.run_id) is None:
                raise StateEmpty(
                    f"run {ex.run_id!r} has no state to save as {label!r} yet; "
                    "call state.set or state.patch first"
                )
            await self._run._refused()

    async def versions(self, *, labeled: bool = False) -> list[StateVersion]:
        """Every version in order (only the labeled snapshots with ``labeled=True``)."""
        return await self._run._db.state_versions(self._run.run_id, labeled=labeled)

    async def _update(self, value: str, *, patch: bool, note: StateNote = NO_NOTE) -> None:
        ex = self._run._execution
        ex.check_live()
        perform, op_key = ex.next_op("state.patch" if patch else "state.set")
        if not perform:
            return
        version = await self._run._db.update_state(
            run_id=ex.run_id, token=ex.token, value=value, patch=patch, op_key=op_key, note=note
        )
        if version is None:
            await self._run._refused()
