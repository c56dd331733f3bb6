"""python -m benchmarks.plugins_ab REV: a plugin's durable overhead, this checkout against REV.

    python -m benchmarks.plugins_ab REV [--framework pydantic_ai] [--rounds 3] [--url URL]

On a shared machine whose speed changes by 2 × from one minute to the next, absolute figures
from two sessions do not compare; two versions measured alternately, in one session, do. REV
is checked out in a temporary git worktree; each round runs one fresh process per version,
this checkout's and REV's in turn. A process runs the scripted agent of ``benchmarks.plugins``
(21 model and 20 tool calls, no history) plain and durable, in pairs, and prints the median of
the pairs' CPU differences per agent run and per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "tidebase": "tidebase",
    "tidebase_core": "tidebase_core",
    "tidebase_server": "tidebase_server",
    "benchmarks": "benchmarks",
    "tidebase_pydantic_ai": "integrations/pydantic_ai",
    "tidebase_openai_agents": "integrations/openai_agents",
    "tidebase_langchain": "integrations/langchain",
}
PAIRS = 30


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.plugins_ab", description=__doc__)
    parser.add_argument("rev", nargs="?", help="the git revision to compare this checkout with")
    parser.add_argument("--framework", default="pydantic_ai")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="a Postgres server URL (default: the embedded server)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(*args.child))
        return 0
    if args.rev is None:
        parser.error("name the revision to compare with")
    from .databases import embedded_server

    server = args.url or embedded_server()
    with tempfile.TemporaryDirectory(prefix="tidebase-ab-") as tmp:
        other = Path(tmp) / "rev"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(other), args.rev],
            check=True,
        )
        try:
            paths = {"this checkout": _import_root(ROOT, Path(tmp) / "head"), args.rev: None}
            paths[args.rev] = _import_root(other, Path(tmp) / "base")
            for round in range(args.rounds):
                for name, path in paths.items():
                    # This file runs in both: REV may predate it.
                    out = subprocess.run(
                        [sys.executable, __file__, "--child", args.framework, server],
                        cwd=path,
                        env={**os.environ, "PYTHONPATH": str(path)},
                        capture_output=True,
                        text=True,
                        check=True,
                    ).stdout.strip()
                    print(f"round {round + 1}, {name}: {out.splitlines()[-1]}", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)], check=False
            )
    return 0


def _import_root(checkout: Path, into: Path) -> Path:
    """A directory whose entries import as the checkout's packages (plugins under their names)."""
    into.mkdir()
    for name, source in PACKAGES.items():
        (into / name).symlink_to(checkout / source)
    return into


async def _child(framework: str, server: str) -> None:
    from benchmarks.databases import create_database, drop_database
    from benchmarks.plugins import FRAMEWORKS, SERIAL
    from tidebase.aio import AsyncTidebase

    _, make_agent, make_history, once = FRAMEWORKS[framework]
    database = f"bench_ab_{uuid.uuid4().hex[:8]}"
    url = create_database(server, database)
    history = make_history(0)
    plain, durable = make_agent(False, SERIAL), make_agent(True, SERIAL)
    try:
        async with AsyncTidebase(url) as tide:

            async def workflow(run: object, _: None) -> None:
                await once(durable, history)

            differences = []
            for pair in range(PAIRS + 5):
                gc.collect()
                start = time.process_time()
                await once(plain, history)
                plain_cpu = time.process_time() - start
                gc.collect()
                start = time.process_time()
                await tide.run("ab", workflow, run_id=uuid.uuid4().hex)
                if pair >= 5:  # warmed up
                    differences.append(time.process_time() - start - plain_cpu)
    finally:
        drop_database(server, database)
    per_run = statistics.median(differences) * 1e3
    operations = SERIAL.model_calls + SERIAL.tool_calls
    print(
        f"durable - plain, CPU, median of {PAIRS} pairs: {per_run:.1f} ms per agent run, "
        f"{per_run / operations:.3f} ms per operation"
    )


if __name__ == "__main__":
    raise SystemExit(main())
