"""python -m benchmarks: Tidebase and DBOS Transact, side by side, in one run.

Starts (or reuses) one PostgreSQL: the embedded server by default, any server with --url.
Each round gives every library a fresh database and runs it in a process of its own; the order
alternates between rounds. Figures are medians over rounds; ratios compare figures measured in
this same run, because these machines are noisy between runs.
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
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from . import report

ROOT = Path(__file__).resolve().parent.parent
LIBRARIES = ("floor", "tidebase", "dbos")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--url", help="a Postgres server URL (default: the embedded server)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    try:
        import dbos  # noqa: F401
    except ImportError:
        print("DBOS Transact is not installed: pip install -e '.[bench]'", file=sys.stderr)
        return 2

    server = args.url or _embedded()
    samples: dict[str, dict[str, list[float]]] = {lib: {} for lib in LIBRARIES}
    started = time.time()
    for round_no in range(args.rounds):
        order = LIBRARIES if round_no % 2 == 0 else tuple(reversed(LIBRARIES))
        for library in order:
            database = f"bench_{library}_{uuid.uuid4().hex[:8]}"
            url = _create_database(server, database)
            try:
                figures = _measure(library, url)
            finally:
                _drop_database(server, database)
            for name, value in figures.items():
                samples[library].setdefault(name, []).append(value)
            print(f"round {round_no + 1}/{args.rounds}: {library} done", file=sys.stderr)

    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "postgres": _server_version(server),
        "rounds": args.rounds,
        "took_seconds": round(time.time() - started),
        "date": time.strftime("%Y-%m-%d"),
    }
    rows = report.build(samples)
    report.write(rows, machine, args.out)
    print(report.markdown(rows, machine))
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


def _embedded() -> str:
    from tidebase_core import embedded

    return embedded.embedded_server_uri(Path(os.environ.get("TIDEBASE_HOME", ".tidebase")))


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _create_database(server: str, database: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    return _with_database(server, database)


def _drop_database(server: str, database: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def _server_version(server: str) -> str:
    with psycopg.connect(server) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


if __name__ == "__main__":
    raise SystemExit(main())
