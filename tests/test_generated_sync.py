"""The sync engine is generated from the async one; it must not drift from its source."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_sync_modules_are_generated_from_the_current_async_source() -> None:
    check = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "generate_sync.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
