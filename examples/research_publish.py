"""Research → draft → approval → publish, with live state, an approval gate and a usage ledger.

    python examples/research_publish.py [run id]

Runs offline: the "model" is a stub that answers deterministically and reports token usage.
The run stops at the approval gate and prints a one-line command; run it in a second terminal
to approve (or reject), and the waiting process continues. Kill it anywhere (FAIL_AT=draft
kills it inside the draft step) and run it again with the same run id: finished steps replay,
the recorded decision replays, and `publish` (an external write with an idempotency key) runs
once.
"""

from __future__ import annotations

import os
import signal
import sys
import uuid

import tidebase
from tidebase import RunContext


def stub_model(run: RunContext, step: str, prompt: str) -> str:
    """A stand-in for an LLM call: deterministic text, real-looking usage."""
    print(f"  executing {step}")
    if os.environ.get("FAIL_AT") == step:
        print(f"  FAIL_AT={step}: killing this process with SIGKILL inside the step", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    words = prompt.split()
    run.usage.record(
        provider="openai",
        model="gpt-4o-mini",
        input_tokens=len(words) * 40,
        output_tokens=len(words) * 25,
        label="stub",
    )
    return f"[{len(words)}-word answer to: {prompt[:40]}…]"


def research_and_publish(run: RunContext, input: dict[str, str]) -> dict[str, str]:
    topic = input["topic"]
    run.state.set({"phase": "research", "progress": 0.1})
    notes = run.step(
        "research",
        lambda: stub_model(run, "research", f"Collect facts about {topic}"),
        input={"topic": topic},
    )
    run.state.patch({"phase": "drafting", "progress": 0.4})
    draft = run.step(
        "draft",
        lambda: stub_model(run, "draft", f"Write an article from {notes}"),
        input={"notes": notes},
    )
    run.state.patch({"phase": "awaiting approval", "progress": 0.7, "draft": draft})
    run.state.save("draft ready")

    command = (
        f'python -c "import tidebase; tidebase.Tidebase().gates.resolve('
        f"'{run.run_id}', 'publish', 'approved', actor='you')\""
    )
    print(f"\n  waiting for approval. In another terminal:\n    {command}\n", flush=True)
    decision = run.gate("publish", f"Publish the article on {topic}?", data={"draft": draft})
    if not decision.approved:
        run.state.patch({"phase": "rejected", "progress": 1.0})
        return {"status": "not published", "by": decision.actor or "?"}

    run.state.patch({"phase": "publishing", "progress": 0.9})
    url = run.step(
        "publish",
        lambda: f"https://example.com/{topic.replace(' ', '-')}",  # the external write
        input={"draft": draft},
        side_effects=["cms"],
        idempotency_key=f"publish-{run.run_id}",
    )
    run.state.patch({"phase": "published", "progress": 1.0, "url": url})
    return {"status": "published", "url": url, "by": decision.actor or "?"}


def main() -> None:
    run_id = sys.argv[1] if len(sys.argv) > 1 else f"article-{uuid.uuid4().hex[:8]}"
    print(f"run {run_id}   (resume with: python examples/research_publish.py {run_id})")
    with tidebase.Tidebase() as tide:
        result = tide.run(
            "research_publish", research_and_publish, run_id=run_id, input={"topic": "tides"}
        )
        print(f"result: {result}")
        print(f"state:  {tide.runs.state(run_id)}")
        usage = tide.usage.summary(run_id)
        print(
            f"usage:  {usage.calls} model calls, {usage.total_tokens} tokens, ${usage.cost_usd:.6f}"
        )


if __name__ == "__main__":
    main()
