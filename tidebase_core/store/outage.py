"""What the user is told while the database is away: one line when it goes, one when it is back.

Every connection that notices the loss reports it here, but only the first report of an outage
is logged (logger ``tidebase``), saying where the database is (password hidden) and how long
Tidebase waits at most. Meanwhile psycopg_pool's own warnings about the same outage (one per
failed connection attempt, one or two a second) are dropped. The same for a server that is
full (it answers, but refuses a new connection): one line per ``reconnect_seconds`` while runs
wait for one, instead of the pool's warning at each attempt to grow.
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time

from .records import Probe

__all__ = ["Outage", "no_connection"]

_names = itertools.count(1)
_lock = threading.Lock()
_since: dict[str, float] = {}  # database (as shown) → when its outage was first reported
_quiet_until = 0.0  # psycopg_pool's noise about broken connections or a full server until then
_full_said: dict[str, float] = {}  # database (as shown) → until when it was said to be full
_pools: dict[str, str] = {}  # pool name → database, for every Tidebase pool
_POOL_NAME = re.compile(r"'(tidebase-\d+)'")

# psycopg_pool's warnings about connections an outage broke (they name no pool).
_POOL_NOISE = (
    "discarding broken connection",
    "discarding closed connection",
    "rolling back returned connection",
    "closing returned connection",
    "error resetting connection",
)


class _QuietPool(logging.Filter):
    """Drops psycopg_pool's per-attempt warnings while a Tidebase store reports an outage or a
    full server."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING or not (_since or time.monotonic() < _quiet_until):
            return True
        if isinstance(record.msg, str) and record.msg.startswith(_POOL_NOISE):
            return False
        args = record.args if isinstance(record.args, tuple) else ()
        if any(isinstance(a, str) and a in _pools for a in args):
            return False
        # Older psycopg_pool releases (3.2.0) format the pool's name into the message itself.
        named = _POOL_NAME.search(record.msg) if isinstance(record.msg, str) else None
        return named is None or named[1] not in _pools


logging.getLogger("psycopg.pool").addFilter(_QuietPool())


class Outage:
    """The database's availability as this process sees it (one report per database, however
    many clients and connections notice)."""

    def __init__(self, where: str, seconds: float, log: logging.Logger) -> None:
        self.where = where
        self.seconds = seconds
        self.pool_name = f"tidebase-{next(_names)}"
        self._log = log
        with _lock:
            _pools[self.pool_name] = where

    def lost(self) -> None:
        """A connection broke (a restart, a network cut): the pool's warnings about the other
        connections that broke with it are dropped for a while."""
        global _quiet_until
        _quiet_until = max(_quiet_until, time.monotonic() + self.seconds)

    def full(self, why: str) -> None:
        """A run waits for a pooled connection and Postgres refuses a new one: every client of
        the server together took its max_connections. Said once per ``seconds``."""
        global _quiet_until
        now = time.monotonic()
        with _lock:
            _quiet_until = max(_quiet_until, now + self.seconds)
            if _full_said.get(self.where, 0.0) > now:
                return
            _full_said[self.where] = now + self.seconds
        self._log.warning(
            "Postgres (%s) refuses more connections (%s): every client of the server together "
            "reached its max_connections, so runs wait up to %gs (reconnect_seconds) for one this "
            "client already holds; raise the server's max_connections, or lower "
            "max_connections of Tidebase's clients",
            self.where,
            why,
            self.seconds,
        )

    def begin(self, cause: BaseException) -> None:
        """Connecting failed: the database is away. Said once per outage."""
        with _lock:
            if self.where in _since:
                return
            _since[self.where] = time.monotonic()
        self._log.warning(
            "Tidebase is waiting for the database (%s), which is not answering (%s); "
            "operations wait up to %gs for it (reconnect_seconds) before failing",
            self.where,
            type(cause).__name__,
            self.seconds,
        )

    def end(self) -> None:
        """A connection was made again."""
        with _lock:
            since = _since.pop(self.where, None)
        if since is not None:
            self._log.info(
                "Tidebase is connected to the database again (%s) after %.1fs",
                self.where,
                time.monotonic() - since,
            )


def no_connection(probed: Probe | None, pooled: int, most: int) -> str:
    """Why a run got no pooled connection in time, and what to change: the pool holds
    ``pooled`` of its ``most`` connections, and ``probed`` is what a fresh connection met."""
    if probed is None or (probed.full and pooled >= most):
        return f"every one of the {most} pooled connections is busy (raise max_connections)"
    if probed.full:
        return (
            f"this client holds {pooled} of its {most} connections and Postgres refuses more "
            f"({probed.why}): every client of the server together reached the server's "
            "max_connections; raise it, or lower max_connections of Tidebase's clients"
        )
    return f"the database is not answering ({probed.why})"
