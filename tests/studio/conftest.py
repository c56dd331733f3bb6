"""Studio in a real headless Chromium against a real ``tidebase serve`` (uvicorn in a thread)
on the test's database; workflows run in-process in threads on the ``tide`` fixture's client.

Chromium is Debian's (``/usr/bin/chromium``); when it is missing the session installs it with
apt-get first (``tests/studio/browser.py``). Each test's page is 1366×768, a laptop screen; its
last screenshot is kept under ``.tidebase/artifacts/studio/`` (or ``$TIDEBASE_ARTIFACTS``), and a
JavaScript error on the page fails the test.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("playwright.sync_api", reason="the Studio tests need playwright (dev extra)")

from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Error,
    Page,
    Playwright,
    sync_playwright,
)

from tests.server.conftest import KEY, RunningServer, make_server  # noqa: F401  (fixture)

from .browser import CHROMIUM_ARGS, ensure_chromium

ROOT = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1366, "height": 768}
EXPECT_MS = 5000  # generous bound for the UI to show what the server already has


def artifacts_dir() -> Path:
    found = Path(os.environ.get("TIDEBASE_ARTIFACTS") or ROOT / ".tidebase" / "artifacts")
    path = found / "studio"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def chromium() -> Path:
    return ensure_chromium()


@pytest.fixture(scope="session")
def playwright_session() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(chromium: Path, playwright_session: Playwright) -> Iterator[Browser]:
    found = playwright_session.chromium.launch(
        executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
    )
    yield found
    found.close()


class Studio:
    """One browser page on one server: ``open("#/runs/ID")``, ``shot("name")``."""

    def __init__(self, server: RunningServer, page: Page, name: str) -> None:
        self.server = server
        self.page = page
        self.name = name
        self.errors: list[str] = []
        self.expected_console: list[str] = ["401"]  # the key prompt starts with a 401
        self.requests: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))
        page.on("console", self._console)
        page.on("request", lambda request: self.requests.append(request.url))

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium logs each refused request; those a test expects are not defects.
        if message.type == "error" and not any(t in message.text for t in self.expected_console):
            self.errors.append(f"console error: {message.text}")

    @property
    def url(self) -> str:
        return f"{self.server.url}/studio/"

    def open(self, fragment: str = "#/") -> Page:
        self.page.goto(self.url + fragment)
        return self.page

    def shot(self, label: str) -> Path:
        path = artifacts_dir() / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def make_studio(
    browser: Browser,
    make_server: Callable[..., RunningServer],  # noqa: F811
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., Studio]]:
    opened: list[Studio] = []
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)

    def make(api_key: str | None = None) -> Studio:
        server = make_server(api_key=api_key)
        context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
        context.set_default_timeout(EXPECT_MS)
        studio = Studio(server, context.new_page(), name if not opened else f"{name}-{len(opened)}")
        opened.append(studio)
        return studio

    yield make
    for studio in opened:
        with contextlib.suppress(Error):
            studio.shot("last")
        studio.page.context.close()
    errors = [e for s in opened for e in s.errors]
    assert not errors, f"the page logged errors: {errors}"


@pytest.fixture
def studio(make_studio: Callable[..., Studio]) -> Studio:
    return make_studio()
