"""The Chromium the browser tests use: present, or installed by the tests with a message that
says what to do when that cannot happen."""

from __future__ import annotations

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
