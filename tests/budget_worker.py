"""A real worker process for the budget crash test (guarantee 13).

    python -m tests.budget_worker <run_id> <log_file>

Runs an agent loop of CALLS (default 10) steps declared ``spends=True``, each recording a
model call of $0.30, under ``Budget(usd=CAP)`` (default 1.00). Each call appends
"<step key> <pid>" to the log when it starts; BLOCK_AT=<key> prints "IN <key>" after that call
recorded its usage and blocks on stdin (the test kills the process there).

Prints "RESULT <json>" or "ERROR <ExceptionType> <message>" (exit code 3).
"""

from __future__ import annotations

import json
import os
import sys
from decimal import Decimal
from typing import Any

from tidebase import Budget, RunContext, Tidebase
from tidebase.errors import TidebaseError
from tidebase_core.context import current_step

LOG = sys.argv[2] if len(sys.argv) > 2 else os.devnull
BLOCK_AT = os.environ.get("BLOCK_AT")


def loop(run: RunContext, input: Any) -> int:
    for i in range(int(os.environ.get("CALLS", "10"))):

        def call(i: int = i) -> int:
            step = current_step.get()  # this step's key: call, call#2 …
            with open(LOG, "a") as f:
                f.write(f"{step} {os.getpid()}\n")
            run.usage.record(
                provider="scripted",
                model="m1",
                input_tokens=100,
                output_tokens=10,
                cost_usd=Decimal("0.30"),
                agent="looper",
            )
            if step == BLOCK_AT:
                print(f"IN {step}", flush=True)
                sys.stdin.readline()
            return i

        run.step("call", call, spends=True)
    return 0


def main() -> int:
    run_id = sys.argv[1]
    tide = Tidebase()
    tide.open()
    try:
        result = tide.run(
            "budget-loop",
            loop,
            run_id=run_id,
            budget=Budget(usd=Decimal(os.environ.get("CAP", "1.00"))),
        )
    except TidebaseError as exc:
        print(f"ERROR {type(exc).__name__} {exc}", flush=True)
        return 3
    finally:
        tide.close()
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
