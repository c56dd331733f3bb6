"""A real worker process running the two-tool triage agent, for the crash tests.

    python -m tests.integrations.pydantic_ai.worker <run_id> <log_file>

Every model request and tool body appends "<name> <pid>" to the log file when it starts.
BLOCK_AT=<name>: print "IN <name>" when that body starts and block until a line arrives on
stdin (the test kills the process there). Prints "RESULT <json>".
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from tidebase.aio import AsyncRunContext, AsyncTidebase

from .scripted import Deps, triage_agent

LOG = sys.argv[2]


def record(name: str) -> None:
    with open(LOG, "a") as log:
        log.write(f"{name} {os.getpid()}\n")
    if name == os.environ.get("BLOCK_AT"):
        print(f"IN {name}", flush=True)
        sys.stdin.readline()


agent = triage_agent(record)


async def triage(run: AsyncRunContext, input: dict[str, str]) -> str:
    result = await agent.run(input["report"], deps=Deps(run=run))
    return result.output


async def main() -> None:
    async with AsyncTidebase() as tide:
        output = await tide.run(
            "triage", triage, run_id=sys.argv[1], input={"report": "billing is down"}
        )
    print("RESULT " + json.dumps(output), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
