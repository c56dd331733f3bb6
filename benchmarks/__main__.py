"""python -m benchmarks: Tidebase and DBOS Transact, side by side, in one run.

Starts (or reuses) one PostgreSQL: the embedded server by default, any server with --url.
Each round gives every library a fresh database and runs it in a process of its own; the order
alternates between rounds. Figures are medians over rounds; ratios compare figures measured in
this same run, because these machines are noisy between runs. Then the empty workflow once more
in paired blocks (``benchmarks.paired``), where each ratio compares figures seconds apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from pathlib import Path

from . import paired, report
from .databases import ROOT, create_database, drop_database, embedded_server, server_version

LIBRARIES = ("floor", "tidebase", "dbos")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--url", help="a Postgres server URL (default: the embedded server)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--paired-blocks",
        type=int,
        default=30,
        help="blocks of the paired empty-workflow measurement (benchmarks.paired; 0: skip)",
    )
    args = parser.parse_args()
    try:
        import dbos  # noqa: F401
    except ImportError:
        print("DBOS Transact is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    server = args.url or embedded_server()
    samples: dict[str, dict[str, list[float]]] = {lib: {} for lib in LIBRARIES}
    started = time.time()
    for round_no in range(args.rounds):
        order = LIBRARIES if round_no % 2 == 0 else tuple(reversed(LIBRARIES))
        for library in order:
            database = f"bench_{library}_{uuid.uuid4().hex[:8]}"
            url = create_database(server, database)
            try:
                figures = _measure(library, url)
            finally:
                drop_database(server, database)
            for name, value in figures.items():
                samples[library].setdefault(name, []).append(value)
            print(f"round {round_no + 1}/{args.rounds}: {library} done", file=sys.stderr)
    pairs = paired.measure(server, args.paired_blocks, 200) if args.paired_blocks else None

    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "postgres": server_version(server),
        "rounds": args.rounds,
        "took_seconds": round(time.time() - started),
        "date": time.strftime("%Y-%m-%d"),
    }
    rows = report.build(samples)
    report.write(rows, machine, args.out, pairs)
    print(report.markdown(rows, machine, pairs))
    return 0


def _measure(library: str, url: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.child", "run", library, url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{library} failed:\n{done.stdout}\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    raise SystemExit(main())
