"""Regenerate ``docs/images/studio-run.png``, the README's picture of Studio's run page.

Runs the browser test that builds a realistic run and photographs its page (same fixtures as
the Studio tests: embedded Postgres, a real ``tidebase serve``, Debian's headless Chromium),
then copies the picture into the docs:

    python tools/studio_screenshot.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "images" / "studio-run.png"


def main() -> int:
    env = {**os.environ, "TIDEBASE_STUDIO_SCREENSHOT": str(TARGET)}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:xdist",
        "tests/studio/test_screenshot.py",
    ]
    done = subprocess.run(command, cwd=ROOT, env=env, check=False)
    if done.returncode != 0:
        print(
            "the screenshot test failed; docs/images/studio-run.png is unchanged", file=sys.stderr
        )
        return done.returncode
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
