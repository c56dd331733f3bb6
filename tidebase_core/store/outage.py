"""What the user is told while the database is away: one line when it goes, one when it is back.

Every connection that notices the loss reports it here, but only the first report of an outage
is logged (logger ``tidebase``), saying where the database is (password hidden) and how long
Tidebase waits at most. Meanwhile psycopg_pool's own warnings about the same outage (one per
failed connection attempt, one or two a second) are dropped.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time

__all__ = ["Outage"]

_names = itertools.count(1)
_quiet: set[str] = set()  # pools of stores whose outage is being reported
_quiet_lock = threading.Lock()

# psycopg_pool's warnings about connections an outage broke (they name no pool).
_POOL_NOISE = (
    "discarding broken connection",
    "discarding closed connection",
    "rolling back returned connection",
    "closing returned connection",
    "error resetting connection",
)


class _QuietPool(logging.Filter):
    """Drops psycopg_pool's per-attempt warnings while a Tidebase store reports an outage."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _quiet or record.levelno > logging.WARNING:
            return True
        if isinstance(record.msg, str) and record.msg.startswith(_POOL_NOISE):
            return False
        return not any(isinstance(a, str) and a in _quiet for a in record.args or ())


_filter = _QuietPool()
logging.getLogger("psycopg.pool").addFilter(_filter)


class Outage:
    """The database's availability as one store sees it."""

    def __init__(self, where: str, seconds: float, log: logging.Logger) -> None:
        self.where = where
        self.seconds = seconds
        self.pool_name = f"tidebase-{next(_names)}"
        self._log = log
        self._lock = threading.Lock()
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def begin(self, cause: BaseException) -> None:
        """A connection was lost: say so once per outage."""
        with self._lock:
            if self._since is not None:
                return
            self._since = time.monotonic()
        with _quiet_lock:
            _quiet.add(self.pool_name)
        self._log.warning(
            "Tidebase lost its connection to the database (%s: %s); waiting up to %gs "
            "(reconnect_seconds) for it to come back before operations fail",
            self.where,
            type(cause).__name__,
            self.seconds,
        )

    def end(self) -> None:
        """A connection was made again."""
        with self._lock:
            since, self._since = self._since, None
        if since is None:
            return
        with _quiet_lock:
            _quiet.discard(self.pool_name)
        self._log.info(
            "Tidebase is connected to the database again (%s) after %.1fs",
            self.where,
            time.monotonic() - since,
        )
