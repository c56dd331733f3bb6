"""A real worker process for the crash, race and zombie tests.

    python -m tests.worker <run_id> <log_file>

Runs the workflow ``steps`` (STEPS steps, default 4) on the database the TIDEBASE_* variables
name. Each step body appends "<step> <pid>" to the log file when it starts, so the test can
count real executions independently of the database. Environment:

- BLOCK_AT=step3: print "IN step3" when that step's body starts and block until a line arrives
  on stdin (the test then kills, stops or releases the process);
- READY=1: print "READY" and wait for a line on stdin before starting (a start barrier);
- WAIT=1: pass wait=True to tide.run (wait for another live worker instead of RunLocked).

Prints "RESULT <json>" or "ERROR <ExceptionType> <message>" (exit code 3).
"""

from __future__ import annotations

import json
import os
import sys

from tidebase import RunContext, Tidebase
from tidebase.errors import TidebaseError


def main() -> int:
    run_id, log = sys.argv[1], sys.argv[2]
    block_at = os.environ.get("BLOCK_AT")
    n_steps = int(os.environ.get("STEPS", "4"))

    def body(name: str):
        def fn() -> str:
            with open(log, "a") as f:
                f.write(f"{name} {os.getpid()}\n")
            if name == block_at:
                print(f"IN {name}", flush=True)
                sys.stdin.readline()
            return f"{name} done"

        return fn

    def steps(run: RunContext, input: dict[str, int]) -> list[str]:
        return [
            run.step(f"step{i}", body(f"step{i}"), input={"i": i}) for i in range(1, n_steps + 1)
        ]

    tide = Tidebase()
    tide.open()
    if os.environ.get("READY") == "1":
        print("READY", flush=True)
        sys.stdin.readline()
    try:
        result = tide.run(
            "steps", steps, run_id=run_id, input={"n": n_steps}, wait=os.environ.get("WAIT") == "1"
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
