"""Quickstart: a three-step workflow that survives a crash.

    python examples/quickstart.py                  # runs all three steps
    FAIL_AT=draft python examples/quickstart.py    # dies (SIGKILL) inside the "draft" step
    python examples/quickstart.py <run id>         # resumes it: finished steps replay

Without TIDEBASE_DATABASE_URL it uses an embedded PostgreSQL in your data directory (started on
first use, shared by every process, left running for the next one; `tidebase db stop` stops it).
"""

from __future__ import annotations

import os
import signal
import sys
import uuid
import zlib

import tidebase

EXECUTED: list[str] = []  # step bodies that really ran in this process


def maybe_die(step: str) -> None:
    EXECUTED.append(step)
    if os.environ.get("FAIL_AT") == step:
        print(f"  FAIL_AT={step}: killing this process with SIGKILL inside the step", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


@tidebase.step
def research(topic: str) -> list[str]:
    print(f"  executing research({topic!r})")
    maybe_die("research")
    return [f"{topic} rise and fall twice a day", f"{topic} follow the moon"]


@tidebase.step
def draft(facts: list[str]) -> str:
    print(f"  executing draft({len(facts)} facts)")
    maybe_die("draft")
    return " ".join(f.capitalize() + "." for f in facts)


def _publish_key(text: str) -> str:
    run = tidebase.current_run()
    return f"publish-{run.run_id if run else 'local'}"


# An external write: declared, and made idempotent so a resume may safely repeat it.
@tidebase.step(side_effects=["publish"], idempotency_key=_publish_key)
def publish(text: str) -> dict[str, str]:
    print("  executing publish(...)")
    maybe_die("publish")
    return {
        "url": f"https://example.com/articles/{zlib.crc32(text.encode())}",
        "status": "published",
    }


@tidebase.workflow
def write_article(topic: str) -> dict[str, str]:
    return publish(draft(research(topic)))


def main() -> None:
    run_id = sys.argv[1] if len(sys.argv) > 1 else f"quickstart-{uuid.uuid4().hex[:8]}"
    print(f"run {run_id}   (resume it with: python examples/quickstart.py {run_id})")
    result = write_article.run("tides", run_id=run_id)

    with tidebase.Tidebase() as tide:
        run = tide.runs.get(run_id)
        print(f"run {run_id} is {run.status.value} after {run.attempt} attempt(s)")
        for step in tide.runs.steps(run_id):
            how = "executed now" if step.name in EXECUTED else "replayed from its checkpoint"
            print(f"  {step.name:<10} {how:<29} (written by attempt {step.attempt})")
    print(f"result: {result}")


if __name__ == "__main__":
    main()
