"""A cron schedule: Tidebase enqueues the workflow at each fire time; a worker runs it.

    python examples/cron_schedule.py

Schedules are 5-field cron expressions in UTC. Each fire is enqueued with the dedupe key
'sched:<name>:<fire time>' by whichever worker's reconciler ticks first, exactly once however
many workers run. This example schedules every minute and waits for the first fire (up to a
minute), then removes the schedule.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import tidebase
from tidebase import RunContext

tide = tidebase.Tidebase()


@tide.workflow("digest")
def digest(run: RunContext, input: dict[str, Any]) -> str:
    return run.step("compose", lambda: f"digest for {input['team']} at {datetime.now(UTC):%H:%M}")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    schedule = tide.schedules.set(
        "team-digest", cron="* * * * *", workflow_name="digest", input={"team": "ops"}
    )
    print(f"next fire at {schedule.next_fire_at}")
    stop = threading.Event()
    worker = threading.Thread(target=tide.work, kwargs={"stop": stop})  # reconciler included
    worker.start()
    try:
        while not [r for r in tide.runs.list(workflow="digest") if r.status == "completed"]:
            time.sleep(0.5)
    finally:
        stop.set()
        worker.join()
        tide.schedules.delete("team-digest")
    for run in tide.runs.list(workflow="digest"):
        print(run.run_id, run.status, run.result, run.metadata)
    tide.close()


if __name__ == "__main__":
    main()
