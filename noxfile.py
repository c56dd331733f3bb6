"""Developer sessions: ``pip install nox`` then ``nox -s <session>``.

- tests          the test suite on the newest dependencies the ranges admit
- tests-oldest   the test suite with every core dependency at its lower bound (the bounds we claim)
- lint           ruff check + ruff format --check + the generated sync engine is current
- typecheck      mypy (strict) on tidebase and tidebase_core
- generate       regenerate tidebase_core/_sync/ from tidebase_core/_async/
- bench          Tidebase against DBOS Transact on the same Postgres (python -m benchmarks)
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PYTHON = "3.11"


def _core_lower_bounds() -> list[str]:
    """``name>=x`` requirements of the core, pinned to ``name==x``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = []
    for requirement in project["dependencies"]:
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)>=([^,;\s]+)", requirement)
        if not match:
            raise SystemExit(f"core dependency without a lower bound: {requirement!r}")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session(name="tests-oldest", python=PYTHON)
def tests_oldest(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.install(*_core_lower_bounds())
    session.run("pip", "list", silent=False)
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "tools/generate_sync.py", "--check")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("mypy")


@nox.session(python=PYTHON)
def generate(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("python", "tools/generate_sync.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)
