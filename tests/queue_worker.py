"""A real queue worker process for the queue tests.

    python -m tests.queue_worker <queues, comma-separated> <log_file>

Registers the workflows below and runs ``tide.work`` until SIGTERM (which drains: the run in
hand is finished, nothing more is claimed). Every step body appends "<run_id>:<step> <pid>" to
the log file when it starts, so a test counts real executions. Environment:

- CONCURRENCY (default 1);
- BLOCK_AT=<step>: print "IN <run_id> <step>" when that body starts and block on stdin;
- TRACK=<path>: the "track" workflow appends "+<run_id>"/"-<run_id>" around its step (the
  claim-race test measures concurrency from it);
- PLAIN_RUN=<run_id>: instead of working queues, run "three-steps" as a plain run
  (``tide.run``), then exit.
Prints "READY" once the worker loop is about to start, "DRAINING" when SIGTERM arrives and
"STOPPED" after draining.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from tidebase import RunContext, Tidebase

QUEUES = sys.argv[1].split(",") if len(sys.argv) > 1 else ["default"]
LOG = sys.argv[2] if len(sys.argv) > 2 else os.devnull
BLOCK_AT = os.environ.get("BLOCK_AT")
TRACK = os.environ.get("TRACK")

tide = Tidebase()


def _log(line: str) -> None:
    with open(LOG, "a") as f:
        f.write(line + "\n")


def body(run: RunContext, name: str) -> Any:
    def fn() -> str:
        _log(f"{run.run_id}:{name} {os.getpid()}")
        if name == BLOCK_AT:
            print(f"IN {run.run_id} {name}", flush=True)
            sys.stdin.readline()
        return f"{name} done"

    return fn


@tide.workflow("three-steps")
def three_steps(run: RunContext, input: Any) -> list[str]:
    return [run.step(s, body(run, s)) for s in ("a", "b", "c")]


@tide.workflow("track")
def track(run: RunContext, input: Any) -> str:
    def fn() -> str:
        assert TRACK is not None
        with open(TRACK, "a") as f:
            f.write(f"+{run.run_id} {time.monotonic()}\n")
        time.sleep(float(input.get("hold", 0)))
        with open(TRACK, "a") as f:
            f.write(f"-{run.run_id} {time.monotonic()}\n")
        return "ok"

    return run.step("hold", fn)


def main() -> None:
    # WARNING by default: the test harness reads stderr only at exit, and a full pipe would
    # block the worker on its own log lines.
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"), stream=sys.stderr)
    stop = threading.Event()

    def drain(*_: Any) -> None:
        stop.set()
        print("DRAINING", flush=True)  # the test lets the run in hand go on only after this

    signal.signal(signal.SIGTERM, drain)
    plain = os.environ.get("PLAIN_RUN")
    if plain:
        print("READY", flush=True)
        print("RESULT", tide.run("three-steps", three_steps, run_id=plain, input={}), flush=True)
        return
    print("READY", flush=True)
    tide.work(QUEUES, concurrency=int(os.environ.get("CONCURRENCY", "1")), stop=stop, poll_s=0.05)
    print("STOPPED", flush=True)
    tide.close()


if __name__ == "__main__":
    main()
