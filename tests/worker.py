"""A real worker process for the crash, race and zombie tests.

    python -m tests.worker <run_id> <log_file>     # run_id "-": a new run, id chosen by Tidebase

Runs a workflow (SCENARIO, default "steps") on the database the TIDEBASE_* variables name.
Every step or child body appends "<name> <pid>" to the log file when it starts, so a test can
count real executions independently of the database. Environment:

- SCENARIO: "steps" (STEPS steps, default 4), "gate" (a step, an approval gate, two steps),
  "fanout" (three child runs a, b, c, then a step), "usage" (two steps that record usage),
  "retry_charge" (an unsafe payment step whose first try fails and second charges);
- BLOCK_AT=<name>: print "IN <name>" when that body starts and block until a line arrives on
  stdin (the test then kills, stops or releases the process);
- READY=1: print "READY" and wait for a line on stdin before starting (a start barrier);
- WAIT=1: pass wait=True to tide.run (wait for another live worker instead of RunLocked);
- GATE_WAIT=0: the gate parks the run (wait=False) instead of waiting.

Prints "RESULT <json>" or "ERROR <ExceptionType> <message>" (exit code 3).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from tidebase import RetryPolicy, RunContext, Tidebase, current_run
from tidebase.errors import TidebaseError

LOG = sys.argv[2] if len(sys.argv) > 2 else os.devnull
BLOCK_AT = os.environ.get("BLOCK_AT")


def body(name: str, value: Any = None) -> Callable[[], Any]:
    def fn() -> Any:
        with open(LOG, "a") as f:
            f.write(f"{name} {os.getpid()}\n")
        if name == BLOCK_AT:
            run = current_run()
            print(f"IN {name} {run.run_id if run else ''}", flush=True)
            sys.stdin.readline()
        return f"{name} done" if value is None else value

    return fn


def steps(run: RunContext, input: dict[str, int]) -> list[str]:
    return [
        run.step(f"step{i}", body(f"step{i}"), input={"i": i}) for i in range(1, input["n"] + 1)
    ]


def gate(run: RunContext, input: dict[str, int]) -> dict[str, Any]:
    draft = run.step("draft", body("draft"))
    decision = run.gate(
        "approve",
        "Publish this draft?",
        data={"draft": draft},
        wait=os.environ.get("GATE_WAIT", "1") == "1",
    )
    if not decision.approved:
        return {"published": False, "by": decision.actor}
    run.step("publish", body("publish"))
    run.step("notify", body("notify"))
    return {"published": True, "by": decision.actor, "note": decision.payload}


def _child(name: str) -> Callable[[RunContext, Any], Any]:
    def child(run: RunContext, input: Any) -> str:
        return str(run.step("work", body(name, f"{name}:{input}")))

    return child


def fanout(run: RunContext, input: Any) -> dict[str, Any]:
    results = run.fanout(
        "agents", [(n, _child(n), {"topic": n}) for n in ("a", "b", "c")], max_parallel=3
    )
    merged = run.step("merge", body("merge", " + ".join(results)))
    return {"children": results, "merged": merged}


def usage(run: RunContext, input: Any) -> list[str]:
    def call(name: str, tokens: int) -> Callable[[], str]:
        def fn() -> str:
            body(name)()  # logs the execution (and blocks there if BLOCK_AT names it)
            run.usage.record(
                provider="openai",
                model="gpt-4o",
                input_tokens=tokens,
                output_tokens=tokens // 2,
                label=name,
            )
            return f"{name} done"

        return fn

    return [run.step("first", call("first", 1000)), run.step("second", call("second", 3000))]


def retry_charge(run: RunContext, input: Any) -> str:
    """An unsafe step with retries: its first try fails before charging, the second charges
    (and blocks there, BLOCK_AT=charge, for the test to kill the process)."""
    tries: list[int] = []

    def charge() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError("card network unreachable")
        return str(body("charge")())

    return str(run.step("charge", charge, side_effects=["payment"], retries=_FAST_RETRIES))


_FAST_RETRIES = RetryPolicy(max_retries=2, initial_delay=0.0)

SCENARIOS = {
    "steps": steps,
    "gate": gate,
    "fanout": fanout,
    "usage": usage,
    "retry_charge": retry_charge,
}


def main() -> int:
    run_id = sys.argv[1]
    scenario = os.environ.get("SCENARIO", "steps")
    tide = Tidebase()
    tide.open()
    if os.environ.get("READY") == "1":
        print("READY", flush=True)
        sys.stdin.readline()
    try:
        result = tide.run(
            scenario,
            SCENARIOS[scenario],
            run_id=None if run_id == "-" else run_id,  # "-": a new run, its id Tidebase's
            input={"n": int(os.environ.get("STEPS", "4"))},
            wait=os.environ.get("WAIT") == "1",
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
