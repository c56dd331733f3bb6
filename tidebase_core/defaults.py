"""The process-wide default client that decorated workflows use unless bound to another.

``tidebase.configure(database_url=..., **options)`` sets it; without that, it is built from the
environment (``TIDEBASE_DATABASE_URL`` …) on first use. Async workflows get one
``AsyncTidebase`` per event loop, because a connection pool belongs to the loop it opened in.
"""

from __future__ import annotations

import asyncio
import os
import threading
import weakref
from typing import Any

from ._async.client import AsyncTidebase
from ._sync.client import Tidebase
from .settings import Settings

__all__ = ["configure", "default_async_client", "default_client"]

_lock = threading.Lock()
_options: dict[str, Any] = {}
_sync: Tidebase | None = None
_async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncTidebase] = (
    weakref.WeakKeyDictionary()
)


def configure(
    database_url: str | None = None,
    *,
    lease_seconds: float | None = None,
    schema: str | None = None,
    auto_migrate: bool | None = None,
    max_connections: int | None = None,
    reconnect_seconds: float | None = None,
) -> None:
    """Set the database and options of decorated workflows (sync and async alike).

    Options not given fall back to the ``TIDEBASE_*`` environment variables.
    """
    global _sync
    options: dict[str, Any] = {
        "database_url": database_url,
        "lease_seconds": lease_seconds,
        "schema": schema,
        "auto_migrate": auto_migrate,
        "max_connections": max_connections,
        "reconnect_seconds": reconnect_seconds,
    }
    database = options.pop("database_url")
    Settings.resolve(database, **options)  # fail now, not at the first workflow call
    with _lock:
        old, _sync = _sync, None
        _async.clear()
        _options.clear()
        _options.update(database_url=database, **options)
    if old is not None:
        old.close()


def default_client() -> Tidebase:
    global _sync
    client = _sync
    if client is None:
        with _lock:
            if _sync is None:
                _sync = Tidebase(**_options)
            client = _sync
    return client


def default_async_client() -> AsyncTidebase:
    loop = asyncio.get_running_loop()
    client = _async.get(loop)
    if client is None:
        with _lock:
            client = _async.get(loop)
            if client is None:
                client = _async[loop] = AsyncTidebase(**_options)
    return client


def _forget_after_fork() -> None:
    # The parent's pools and heartbeat thread are not usable in a forked child.
    global _sync, _lock
    _lock = threading.Lock()
    _sync = None
    _async.clear()


os.register_at_fork(after_in_child=_forget_after_fork)
