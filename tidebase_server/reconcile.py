"""The reconciler in ``tidebase serve``: the core's tick (deadlines, stalled queued runs,
recovery webhooks, due schedules, push queues), once per tick across every server and worker
(an advisory lock), every ``TIDEBASE_RECONCILE_MS`` (default 5000; ``TIDEBASE_RECONCILER=0``
turns it off, as upstream)."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

import anyio

from tidebase_core._async.client import AsyncTidebase
from tidebase_core._async.reconciler import AsyncReconciler
from tidebase_core.errors import TidebaseError

__all__ = ["reconcile_every", "reconcile_loop"]

log = logging.getLogger("tidebase.server")


def reconcile_every() -> float | None:
    """Seconds between ticks from the environment; None when turned off."""
    if os.environ.get("TIDEBASE_RECONCILER") == "0":
        return None
    raw = os.environ.get("TIDEBASE_RECONCILE_MS")
    if not raw:
        return 5.0
    try:
        value = float(raw) / 1000
    except ValueError:
        raise ValueError(
            f"TIDEBASE_RECONCILE_MS must be a number of milliseconds, got {raw!r}"
        ) from None
    if value <= 0:
        raise ValueError(f"TIDEBASE_RECONCILE_MS must be > 0, got {raw!r}")
    return value


async def reconcile_loop(
    tide: AsyncTidebase,
    every: float,
    stopping: anyio.Event,
    also: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Tick until ``stopping`` is set (``also``: the server's own sweep, after each tick); a
    failed tick is logged and the next one tries again."""
    reconciler = AsyncReconciler(tide)
    while not stopping.is_set():
        try:
            await reconciler.tick()
            if also is not None:
                await also()
        except TidebaseError as exc:
            log.warning("reconciler tick failed: %s", exc)
        except Exception:
            log.exception("reconciler tick failed")
        with anyio.move_on_after(every):
            await stopping.wait()
