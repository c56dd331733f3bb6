"""Developer sessions: ``pip install nox`` then ``nox -s <session>``.

- tests          the test suite on the newest dependencies the ranges admit
- tests-oldest   the test suite with every core dependency (and genai-prices) at its lower bound
- server-oldest  the server and MCP tests with the server extra at its lower bounds
- lint           ruff check + ruff format --check + the generated sync engine is current
- typecheck      mypy (strict) on tidebase, tidebase_core and each plugin
- integrations   each plugin's tests on the oldest and the newest framework release it
                 supports (nox -s "integration(pydantic-ai, oldest)" … to pick one)
- generate       regenerate tidebase_core/_sync/ from tidebase_core/_async/
- bench          Tidebase against DBOS Transact on the same Postgres (python -m benchmarks)
- chaos          guarantee 10 at scale (nightly): restarts of the real embedded Postgres under
                 1,000 runs (TIDEBASE_CHAOS_RUNS=N nox -s chaos for another count)
- server-load    tidebase serve with 200 SSE subscribers and 50 protocol workers for 60 s
- upstream-server  the original server's own vitest suite against tidebase serve
                 (nox -s upstream-server -- /path/to/upstream; needs node and npm)
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PYTHON = "3.11"


def _lower_bounds(extra: str | None = None) -> list[str]:
    """``name>=x`` requirements of the core (or of an extra), pinned to ``name==x``."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = (
        project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    )
    pins = []
    for requirement in requirements:
        match = re.match(r"^([A-Za-z0-9_.\-\[\]]+)>=([^,;\s]+)", requirement)
        if not match:
            raise SystemExit(f"dependency without a lower bound: {requirement!r}")
        pins.append(f"{match[1]}=={match[2]}")
    return pins


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("pytest", *session.posargs)


@nox.session(name="tests-oldest", python=PYTHON)
def tests_oldest(session: nox.Session) -> None:
    # The core alone (the plugins' tests skip without their frameworks, which need newer
    # pydantic than the core's lower bound).
    session.install("-e", ".[prices]", *TEST_TOOLS, "unasync>=0.6.0", "ruff>=0.9")
    session.install(*_lower_bounds(), *_lower_bounds("prices"))
    session.run("pip", "list", silent=False)
    session.run("pytest", *session.posargs)


@nox.session(name="server-oldest", python=PYTHON)
def server_oldest(session: nox.Session) -> None:
    # The server extra (and httpx, which the tests talk to it with) at its lower bounds; the core
    # floats, since mcp needs a newer pydantic than the core's lower bound.
    session.install("-e", ".[prices,server]", *TEST_TOOLS, "httpx>=0.27")
    session.install(*_lower_bounds("server"), "httpx==0.27.0")
    session.run("pip", "list", silent=False)
    session.run("pytest", "tests/server", "tests/test_mcp.py", *session.posargs)


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
    for plugin in ("pydantic_ai", "openai_agents", "langchain"):
        session.run("mypy", "--strict", f"integrations/{plugin}")


# Oldest and newest releases each plugin was verified on; newest = what installs from the
# registry today (langchain-core 1.7.3+ needs a certifi release it does not serve).
FRAMEWORKS = {
    "pydantic-ai": {
        "tests": "tests/integrations/pydantic_ai",
        "oldest": ["pydantic-ai-slim[openai]==2.62.0"],
        "newest": ["pydantic-ai-slim[openai]==2.68.0"],
    },
    "openai-agents": {
        "tests": "tests/integrations/openai_agents",
        "oldest": ["openai-agents==0.8.0", "openai==2.9.0"],
        "newest": ["openai-agents==0.24.0"],
    },
    "langchain": {
        "tests": "tests/integrations/langchain",
        "oldest": [
            "langchain-core==1.0.0",
            "langchain==1.0.0",
            "langchain-openai==1.0.0",
            "langgraph==1.0.0",
            "langgraph-prebuilt==1.0.0",
        ],
        "newest": ["langchain-core==1.7.2", "langchain==1.4.7", "langchain-openai==1.7.3"],
    },
}


# What a plugin's tests need besides its framework (not the whole dev extra, whose newest
# releases of the other frameworks could pin shared dependencies such as openai).
TEST_TOOLS = [
    "pytest>=8.3",
    "pytest-asyncio>=0.25",
    "pytest-timeout>=2.3",
    "vcrpy>=9.4.2",
    "hypothesis>=6.100.0",
]


@nox.session(python=PYTHON)
@nox.parametrize("framework", list(FRAMEWORKS))
@nox.parametrize("release", ["oldest", "newest"])
def integration(session: nox.Session, framework: str, release: str) -> None:
    spec = FRAMEWORKS[framework]
    session.install("-e", ".[prices]", *TEST_TOOLS, *spec[release])
    session.run("pip", "list", silent=False)
    session.run("pytest", spec["tests"], *session.posargs)


@nox.session(python=PYTHON)
def generate(session: nox.Session) -> None:
    session.install("-e", ".[dev]")
    session.run("python", "tools/generate_sync.py")


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    session.install("-e", ".[bench]")
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session(python=PYTHON)
def chaos(session: nox.Session) -> None:
    """The chaos test of tests/test_chaos.py with >= 1,000 runs (150 in flight at a time)."""
    session.install("-e", ".[dev]")
    runs = session.env.get("TIDEBASE_CHAOS_RUNS") or os.environ.get("TIDEBASE_CHAOS_RUNS", "1000")
    session.run(
        "pytest",
        "tests/test_chaos.py",
        "-p",
        "no:randomly",
        "-s",
        *session.posargs,
        env={"TIDEBASE_CHAOS_RUNS": runs},
    )


@nox.session(name="server-load", python=PYTHON)
def server_load(session: nox.Session) -> None:
    """tidebase serve under load: 200 SSE subscribers and 50 protocol workers for 60 s over
    loopback (TIDEBASE_LOAD_SUBSCRIBERS / _WORKERS / _SECONDS for other sizes); no event lost
    or repeated per subscriber; prints p50/p99 of steps/begin and steps/complete."""
    session.install("-e", ".[dev]")
    sizes = {"SUBSCRIBERS": "200", "WORKERS": "50", "SECONDS": "60"}
    env = {f"TIDEBASE_LOAD_{k}": os.environ.get(f"TIDEBASE_LOAD_{k}", v) for k, v in sizes.items()}
    session.run("pytest", "tests/server/test_load.py", "-n", "0", "-s", *session.posargs, env=env)


@nox.session(name="upstream-server", python=PYTHON)
def upstream_server(session: nox.Session) -> None:
    """The original Tidebase server's own tests (BlueprintLabIO/tidebase, vitest), unchanged,
    against tidebase serve: ``nox -s upstream-server -- /path/to/upstream [FILE ...]`` (a
    checkout, or a git repository from which ``--ref``, default v0.7.0, is extracted; default
    ``$TIDEBASE_UPSTREAM_DIR``). Needs node and npm (packages from the npm registry only)."""
    session.install("-e", ".[server]")
    session.run("python", "tools/upstream_server_tests/run.py", *session.posargs)
