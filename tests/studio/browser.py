"""Debian's Chromium for the Studio browser tests, installed by the tests themselves.

``ensure_chromium()`` returns ``/usr/bin/chromium``, running ``apt-get install chromium`` first
when it is missing. A file lock serializes the install, so parallel pytest workers (xdist) or
two test sessions on one machine never run apt at the same time; the second one waits and finds
the browser installed. Playwright's own browser downloads (``playwright install``) are never
used: the tests drive the distribution's build.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "ChromiumMissing", "ensure_chromium"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
_LOCK = Path(tempfile.gettempdir()) / "tidebase-chromium-install.lock"
_INSTALL = [
    ["apt-get", "update"],
    ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
]


class ChromiumMissing(RuntimeError):
    """Chromium is not installed and could not be installed here."""


def _run(command: list[str], path: Path = CHROMIUM) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ChromiumMissing(
            f"{path} is missing and `{' '.join(command)}` could not run ({exc}); install "
            "Debian's chromium package (as root: apt-get update && apt-get install -y "
            "--no-install-recommends chromium) and run the Studio tests again"
        ) from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise ChromiumMissing(
            f"{path} is missing and `{' '.join(command)}` failed with exit status "
            f"{done.returncode}; install Debian's chromium package (as root: apt-get update && "
            f"apt-get install -y --no-install-recommends chromium) and run the Studio tests "
            f"again. Its last output:\n{tail}"
        )


def ensure_chromium(
    path: Path = CHROMIUM, install: list[list[str]] = _INSTALL, lock: Path = _LOCK
) -> Path:
    """``path`` (``/usr/bin/chromium``), installed first when missing by running ``install``
    (apt-get) under an exclusive lock on ``lock``: one installer at a time, the others wait and
    then find the browser there."""
    if path.exists():
        return path
    tool = install[0][0]
    if shutil.which(tool) is None:
        raise ChromiumMissing(
            f"{path} is missing and this machine has no {tool}: install Chromium so that "
            f"{path} exists (the Studio tests drive Debian's build, never Playwright's)"
        )
    if install is _INSTALL and os.geteuid() != 0:
        raise ChromiumMissing(
            f"{path} is missing and installing it needs root: run `sudo apt-get update && "
            "sudo apt-get install -y --no-install-recommends chromium`, then the tests again"
        )
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a second installer waits here, then finds it
        try:
            if not path.exists():
                for command in install:
                    _run(command, path)
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
    if not path.exists():
        raise ChromiumMissing(
            f"the install finished but {path} does not exist; check the chromium package "
            "(`dpkg -L chromium`)"
        )
    return path


if __name__ == "__main__":  # python -m tests.studio.browser: install ahead of a test run
    print(ensure_chromium())
