"""Studio ships in the wheel: every file of its page matches the package data of
pyproject.toml (a new file in another folder or with another suffix would be left out)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from tidebase_server.studio import STATIC

ROOT = Path(__file__).resolve().parents[2]


def test_every_static_file_is_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setuptools = config["tool"]["setuptools"]
    assert "tidebase_server.studio" in setuptools["packages"]
    globs: list[str] = setuptools["package-data"]["tidebase_server.studio"]
    package = STATIC.parent
    shipped = {p for pattern in globs for p in package.glob(pattern)}
    files = {p for p in STATIC.rglob("*") if p.is_file()}
    assert files, STATIC
    assert files <= shipped, sorted(str(p.relative_to(package)) for p in files - shipped)
    assert (STATIC / "index.html") in shipped
