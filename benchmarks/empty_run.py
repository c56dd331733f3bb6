"""python -m benchmarks.empty_run: where an empty run's time goes (issue 11).

    python -m benchmarks.empty_run [--url URL] [--rounds 300]

One fresh database, one connection, interleaved round by round so machine noise hits each
variant alike:

- ``floor x2``: two bare ``INSERT … ; COMMIT`` round trips (the target's unit);
- ``statements``: the claim and the completion Tidebase sends for an empty run, raw psycopg;
- ``statements, no event rows``: the same without their ``run.started`` / ``run.completed``
  rows (what a run row that is its own log entry would cost);
- the two above again on a copy of ``runs`` with no secondary index;
- ``one statement``: what a new run that makes no durable operation sends instead, its claim
  deferred (``complete_new_run``: the run row created completed, holding both log entries);
- ``tide.run``: the whole engine, on its own pool, for a new run (``run_id`` left to Tidebase,
  as DBOS's benchmark leaves the workflow id to DBOS), and with a ``run_id`` given (claimed at
  once: it may exist, be completed or held elsewhere, which must be known before the body).

Each is timed with ``synchronous_commit`` on (the real cost) and off (CPU alone: the fsync
removed). Prints p10 / median (µs) and each p10 as a multiple of ``floor x2``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg

from tidebase_core.store.queries import Queries, fill_schema

from .databases import create_database, drop_database, embedded_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a Postgres server URL (default: the embedded server)")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    server = args.url or embedded_server()
    database = f"bench_empty_{uuid.uuid4().hex[:8]}"
    url = create_database(server, database)
    try:
        print(json.dumps(measure(url, args.rounds), indent=2))
    finally:
        drop_database(server, database)
    return 0


def _without(pattern: str, query: str) -> str:
    """``query`` without the CTE ``pattern`` matches; fails loudly if its shape changed."""
    stripped = re.sub(pattern, ")", query, flags=re.S)
    if stripped == query:
        raise SystemExit(f"benchmarks.empty_run: the statement changed shape, update {pattern!r}")
    return stripped


def measure(url: str, rounds: int) -> dict[str, Any]:
    import tidebase

    tide = tidebase.Tidebase(url)  # creates the schema
    tide.run("warm", lambda run, _: None)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE floor (id bigint PRIMARY KEY, v jsonb)")
        conn.execute("CREATE SCHEMA bare")
        conn.execute("CREATE TABLE bare.runs (LIKE tidebase.runs INCLUDING DEFAULTS)")
        conn.execute("ALTER TABLE bare.runs ADD PRIMARY KEY (run_id)")
        conn.execute("CREATE TABLE bare.events (LIKE tidebase.events INCLUDING ALL)")
    results: dict[str, Any] = {}
    counter = itertools.count(1)  # floor row ids, across both rounds
    for sync in ("on", "off"):
        results[f"synchronous_commit={sync}"] = _round(url, tide, rounds, sync, counter)
    tide.close()
    return results


def _round(url: str, tide: Any, rounds: int, sync: str, counter: Iterator[int]) -> dict[str, Any]:
    options = f"-c synchronous_commit={sync}"
    conn = psycopg.connect(url, autocommit=True, options=options)
    engine = tide if sync == "on" else _engine(url, options)

    def floor() -> None:
        for _ in range(2):
            conn.execute("INSERT INTO floor VALUES (%s, '{}')", (next(counter),))

    def one_statement(query: str) -> Callable[[], None]:
        def run() -> None:
            params = _claim_params(str(uuid.uuid4()), str(uuid.uuid4()))
            params.update(result="null", result_type=None, payload="{}")
            conn.execute(query, params).fetchall()

        return run

    def statements(claim: str, complete: str) -> Callable[[], None]:
        def run() -> None:
            run_id, token = str(uuid.uuid4()), str(uuid.uuid4())
            conn.execute(claim, _claim_params(run_id, token)).fetchall()
            conn.execute(
                complete,
                {
                    "run_id": run_id,
                    "token": token,
                    "result": "null",
                    "result_type": None,
                    "payload": "{}",
                    "write_id": str(uuid.uuid4()),
                },
            ).fetchall()

        return run

    variants: dict[str, Callable[[], None]] = {"floor x2": floor}
    for schema, label in (("tidebase", ""), ("bare", ", no secondary index")):
        q = fill_schema(Queries, schema)
        claim = _without(r"\), started AS \(.*?FROM claimed c\n\)", q.claim_run)
        complete = _without(r"\), ev AS \(.*?FROM r\n\)", q.complete_run)
        variants[f"statements{label}"] = statements(q.claim_run, q.complete_run)
        variants[f"statements, no event rows{label}"] = statements(claim, complete)
    variants["one statement"] = one_statement(fill_schema(Queries, "tidebase").complete_new_run)
    variants["tide.run"] = lambda: engine.run("empty", _empty)
    variants["tide.run, run_id given"] = lambda: engine.run(
        "empty", _empty, run_id=str(uuid.uuid4())
    )

    timings: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():
        for _ in range(30):  # warm up; psycopg prepares after 5 executions
            fn()
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.perf_counter()
            fn()
            timings[name].append((time.perf_counter() - start) * 1e6)
    conn.close()
    if engine is not tide:
        engine.close()
    unit = _p10(timings["floor x2"])
    return {
        name: {
            "p10": round(_p10(v)),
            "median": round(statistics.median(v)),
            "x_floor": round(_p10(v) / unit, 2),
        }
        for name, v in timings.items()
    }


def _engine(url: str, options: str) -> Any:
    import tidebase

    sep = "&" if "?" in url else "?"
    return tidebase.Tidebase(f"{url}{sep}options={options.replace(' ', '%20').replace('=', '%3D')}")


def _empty(run: Any, _: Any) -> None:
    return None


def _p10(values: list[float]) -> float:
    return sorted(values)[len(values) // 10]


def _claim_params(run_id: str, token: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "workflow": "empty",
        "input": "null",
        "input_hash": "h",
        "metadata": "{}",
        "token": token,
        "host": "bench",
        "pid": 1,
        "started": 1.0,
        "lease": 60,
        "budget": None,
        "holders": None,
        "check_input": True,
        "void_token": None,
        "want_input": False,
        "write_id": str(uuid.uuid4()),
    }


if __name__ == "__main__":
    raise SystemExit(main())
