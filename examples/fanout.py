"""Three sub-agents as child runs of one parent, killed midway and resumed.

    python examples/fanout.py [run id]
    FAIL_AT=critic python examples/fanout.py       # dies (SIGKILL) inside the "critic" agent

Each sub-agent is a run of its own, linked to the parent by an edge name, so it has its own
steps, state and lease. Run it again with the printed run id after a kill: the agents that had
finished return their stored results without running again; the others resume.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from typing import Any

import tidebase
from tidebase import RunContext

AGENTS = {  # name: (prompt, seconds it "thinks")
    "researcher": ("find three facts about {topic}", 0.2),
    "critic": ("list the weak points of an article about {topic}", 0.8),
    "editor": ("suggest a headline for {topic}", 0.4),
}


def sub_agent(run: RunContext, task: dict[str, Any]) -> str:
    name = run.workflow_name

    def think() -> str:
        print(f"  executing {name}", flush=True)
        time.sleep(float(task["seconds"]))  # pretend to call a model
        if os.environ.get("FAIL_AT") == name:
            print(f"  FAIL_AT={name}: killing this process with SIGKILL inside it", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return f"{name}: done '{task['prompt']}'"

    return str(run.step("think", think, input=task))


def team(run: RunContext, input: dict[str, Any]) -> dict[str, Any]:
    children = [
        (name, sub_agent, {"prompt": prompt.format(topic=input["topic"]), "seconds": seconds})
        for name, (prompt, seconds) in AGENTS.items()
    ]
    results = run.fanout("agents", children)  # in parallel, as child runs
    summary = run.step("summarize", lambda: " | ".join(results), input={"results": results})
    return {"summary": summary}


def main() -> None:
    run_id = sys.argv[1] if len(sys.argv) > 1 else f"team-{uuid.uuid4().hex[:8]}"
    print(f"run {run_id}   (resume with: python examples/fanout.py {run_id})")
    with tidebase.Tidebase() as tide:
        result = tide.run("team", team, run_id=run_id, input={"topic": "tides"})
        for child in tide.runs.children(run_id):
            print(
                f"  child {child.run_id:<36} {child.status.value} after {child.attempt} attempt(s)"
            )
        print(f"result: {result}")


if __name__ == "__main__":
    main()
