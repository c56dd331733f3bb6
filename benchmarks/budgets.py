"""python -m benchmarks.budgets: what a budget costs a run (issue 16).

    python -m benchmarks.budgets [--url URL] [--steps 1000] [--rounds 15]

One fresh database, one process. Three workflows of N first-execution steps, interleaved round
by round so machine noise hits each alike: plain steps; steps declared ``spends=True`` in a run
no budget governs (must cost the same: no budget I/O); the same under a ``Budget`` (one check
per step). Also the statements alone, interleaved: the budget check against a checkpoint write
and against ``SELECT 1``. Prints medians and minima (µs) and the statements each run sent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from psycopg import sql

from .databases import create_database, drop_database, embedded_server


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a Postgres server URL (default: the embedded server)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    server = args.url or embedded_server()
    database = f"bench_budget_{uuid.uuid4().hex[:8]}"
    url = create_database(server, database)
    try:
        print(json.dumps(measure(url, args.steps, args.rounds), indent=2))
    finally:
        drop_database(server, database)
    return 0


def measure(url: str, n: int, rounds: int) -> dict[str, Any]:
    from tidebase import Budget, RunContext, Tidebase
    from tidebase_core._sync.store import StoreConnection

    sent: list[str] = []
    original = StoreConnection._send

    def counting(self: StoreConnection, query: str, params: Any) -> Any:
        sent.append(query)
        return original(self, query, params)

    StoreConnection._send = counting  # type: ignore[method-assign]
    tide = Tidebase(url, max_connections=4).open()
    tide._heartbeat.stop()  # lease renewals out of the counts and timings

    def plain(run: RunContext, k: int) -> int:
        for _ in range(k):
            run.step("noop", lambda: None)
        return k

    def spending(run: RunContext, k: int) -> int:
        for _ in range(k):
            run.step("noop", lambda: None, spends=True)
        return k

    budget = Budget(usd=1000, tokens=10**12)
    cases: dict[str, Callable[[], Any]] = {
        "step_plain": lambda: tide.run("p", plain, run_id=str(uuid.uuid4()), input=n),
        "step_spends_no_budget": lambda: tide.run("s", spending, run_id=str(uuid.uuid4()), input=n),
        "step_spends_with_budget": lambda: tide.run(
            "b", spending, run_id=str(uuid.uuid4()), input=n, budget=budget
        ),
    }
    statements: dict[str, int] = {}
    for name, case in cases.items():  # warm-up, and the statements each sends
        sent.clear()
        case()
        statements[name] = len(sent)
    timings: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, case in cases.items():
            start = time.perf_counter()
            case()
            timings[name].append((time.perf_counter() - start) / n * 1e6)

    # The statements alone, on one connection: a budgeted run with 50 ledger rows.
    run_id = str(uuid.uuid4())

    def fifty_calls(run: RunContext, _: Any) -> None:
        for _ in range(50):
            run.usage.record(model="m", input_tokens=10, cost_usd="0.01")

    tide.run("ledger", fifty_calls, run_id=run_id, budget=budget)
    store = tide._store
    alone: dict[str, list[float]] = {"select_1": [], "budget_check": [], "checkpoint_write": []}
    with store.connection() as db:
        token = uuid.uuid4()
        # Hold the run's lease with a token of our own, so checkpoint writes pass the fence.
        db._conn.execute(
            sql.SQL(
                "UPDATE {}.runs SET status = 'running', owner_token = %s WHERE run_id = %s"
            ).format(sql.Identifier(tide.settings.schema)),
            (token, run_id),
        )

        def batch(fn: Callable[[], Any], k: int = 100) -> float:
            start = time.perf_counter()
            for _ in range(k):
                fn()
            return (time.perf_counter() - start) / k * 1e6

        for _ in range(rounds):
            alone["select_1"].append(batch(lambda: db._conn.execute("SELECT 1")))
            alone["budget_check"].append(
                batch(lambda: db.budget_statuses([run_id], run_id=run_id, check=True))
            )
            alone["checkpoint_write"].append(
                batch(
                    lambda: db.write_checkpoint(
                        run_id=run_id,
                        token=token,
                        key=str(uuid.uuid4()),
                        input_hash="h",
                        output="null",
                        output_type=None,
                        attempt=1,
                        decision=_safe(),
                        idempotency_key=None,
                    )
                )
            )
    tide.close()
    StoreConnection._send = original  # type: ignore[method-assign]

    def summary(values: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(values), 1), "min": round(min(values), 1)}

    return {
        "steps": n,
        "rounds": rounds,
        "statements_per_run": statements,
        "per_step_us": {k: summary(v) for k, v in timings.items()},
        "statement_us": {k: summary(v) for k, v in alone.items()},
    }


def _safe() -> Any:
    from tidebase_core.replay import ResumeDecision

    return ResumeDecision.SAFE_REPLAY


if __name__ == "__main__":
    raise SystemExit(main())
