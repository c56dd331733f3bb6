"""A queue and its workers: enqueue jobs, run them on N slots, retry failures with backoff.

    python examples/queue_worker.py            # enqueue 5 jobs, work them, stop when done
    tidebase worker examples.queue_worker:tide --queue reports --concurrency 4   # a worker

A job is a run with status 'queued'. Workers claim with FOR UPDATE SKIP LOCKED under the
queue's lock, so two workers never get the same run and the queue's caps hold across them.
One job fails on its first attempt and is retried (max_attempts=2), replaying its finished step.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import tidebase
from tidebase import RunContext

os.environ.setdefault("TIDEBASE_RETRY_BASE_SECONDS", "0.5")  # 5 s in production
tide = tidebase.Tidebase()


@tide.workflow("generate-report")
def generate_report(run: RunContext, input: dict[str, Any]) -> str:
    data = run.step("fetch", lambda: f"rows for {input['customer']}")
    if input.get("flaky") and run.attempt == 1:
        raise ConnectionError("the mail server hung up")  # retried after the backoff
    return run.step("render", lambda: f"report({data})")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    tide.queues.configure("reports", concurrency=2, rate_per_minute=100)
    jobs = [
        tide.enqueue(
            "generate-report",
            queue="reports",
            input={"customer": f"c{i}", "flaky": i == 3},
            dedupe_key=f"report-c{i}-{time.strftime('%Y-%m-%d')}",  # once a day per customer
            max_attempts=2,
            priority=1 if i == 0 else 0,
        )
        for i in range(5)
    ]
    ids = [job.run.run_id for job in jobs]
    stop = threading.Event()
    worker = threading.Thread(
        target=tide.work, args=(["reports"],), kwargs={"concurrency": 2, "stop": stop}
    )
    worker.start()
    while any(tide.runs.get(i).status not in ("completed", "failed") for i in ids):
        time.sleep(0.2)
    stop.set()  # what SIGTERM does to `tidebase worker`: finish the runs in hand, then exit
    worker.join()
    for run_id in ids:
        run = tide.runs.get(run_id)
        print(f"{run_id}  {run.status}  attempts={run.attempt}  {run.result}")
    print(tide.queues.list())
    tide.close()


if __name__ == "__main__":
    main()
