"""Who holds a lease: an owner token plus where the owning process lives.

A lease held by a process that is gone is void at once when the process lived on this same
host, so re-running a killed script resumes immediately instead of waiting out the lease.
"Same host" is strict: the host name, the boot and (on Linux) the PID namespace must all match,
and a live PID only counts as the owner if it also started at the recorded time (PIDs get reused).
Across hosts nothing can be known, and the lease simply expires.

Within the owner's own process the answer is exact: a lease is live while an execution of this
process runs under its token (``hold``/``let_go``), and void once that execution has finished
(left behind when its cleanup could not run), so re-invoking the run is never ``RunLocked``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

__all__ = ["Owner", "hold", "let_go", "process_is_gone", "this_host", "this_process"]

_live: set[uuid.UUID] = set()  # tokens this process's running executions hold
_live_lock = threading.Lock()


def hold(token: uuid.UUID) -> None:
    """An execution of this process is about to claim a run with ``token``."""
    with _live_lock:
        _live.add(token)


def let_go(token: uuid.UUID) -> None:
    """That execution has finished: a lease left under ``token`` is void."""
    with _live_lock:
        _live.discard(token)


@dataclass(frozen=True, slots=True)
class Owner:
    token: uuid.UUID
    host: str
    pid: int
    started: str  # process start marker; "" where the platform cannot tell

    @classmethod
    def new(cls) -> Owner:
        """A new owner, live in this process until ``let_go(token)``: a lease it takes is never
        voided by this process's own claims meanwhile (forgetting ``let_go`` only means the
        lease expires instead of being voided at once)."""
        owner = cls(uuid.uuid4(), *this_process())
        hold(owner.token)
        return owner


def this_process() -> tuple[str, int, str]:
    """This process as an owner records it: ``(host, pid, start marker)``, for
    ``process_is_gone``."""
    pid = os.getpid()
    return this_host(), pid, _this_process_start(pid)


@cache
def this_host() -> str:
    parts = [socket.gethostname()]
    boot = _read("/proc/sys/kernel/random/boot_id")
    if boot:
        parts.append(boot)
    with contextlib.suppress(OSError):
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    return "|".join(parts)


def process_is_gone(
    host: str | None, pid: int | None, started: str | None, token: uuid.UUID | None = None
) -> bool:
    """True only when we can be sure the owner no longer exists: its process is gone, or it is
    this process and no execution of it runs under ``token`` any more."""
    if host is None or pid is None or host != this_host():
        return False
    if pid == os.getpid():
        if token is None or started != _this_process_start(pid):
            return False
        with _live_lock:
            return token not in _live
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # exists, owned by someone else
    # The PID exists. A zombie (killed, not yet reaped) is gone; any other process is the owner
    # only if it started when the owner did.
    if _process_state(pid) in ("Z", "X"):
        return True
    return bool(started) and _process_start(pid) != started


@cache
def _this_process_start(pid: int) -> str:
    """This process's start marker (cached by pid: a forked child has another)."""
    return _process_start(pid)


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    stat = _read(f"/proc/{pid}/stat")
    # The parenthesised command name may hold spaces and parentheses: split after the last one.
    return stat.rsplit(")", 1)[-1].split() if stat else []


def _process_state(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[0] if fields else ""


def _process_start(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""  # field 22: starttime


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""
