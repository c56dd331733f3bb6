"""The Chromium the browser tests use: present, or installed by the tests with a message that
says what to do when that cannot happen."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from . import browser
from .browser import CHROMIUM, ChromiumMissing, ensure_chromium


def test_the_tests_drive_debians_chromium(chromium: object) -> None:
    assert chromium == CHROMIUM
    assert ensure_chromium() == CHROMIUM  # already there: nothing is installed again


def test_a_failed_install_says_how_to_fix_it() -> None:
    with pytest.raises(ChromiumMissing) as caught:
        browser._run(["sh", "-c", "echo 'E: Unable to locate package chromium' >&2; exit 100"])
    message = str(caught.value)
    assert "exit status 100" in message
    assert "apt-get install -y --no-install-recommends chromium" in message
    assert "Unable to locate package chromium" in message  # apt's own words, for the cause


def test_concurrent_sessions_install_once(tmp_path: Path) -> None:
    """Two pytest workers finding Chromium missing: one installs, the other waits for it."""
    target = tmp_path / "chromium"
    runs = tmp_path / "installs"
    install = [["sh", "-c", f"echo x >> {runs}; sleep 0.3; touch {target}"]]
    found: list[Path] = []

    def session() -> None:
        found.append(ensure_chromium(target, install, tmp_path / "lock"))

    threads = [threading.Thread(target=session) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert found == [target] * 3
    assert runs.read_text().splitlines() == ["x"]  # installed once


def test_an_install_that_does_not_produce_the_browser_fails_loudly(tmp_path: Path) -> None:
    with pytest.raises(ChromiumMissing, match="does not exist"):
        ensure_chromium(tmp_path / "chromium", [["true"]], tmp_path / "lock")
