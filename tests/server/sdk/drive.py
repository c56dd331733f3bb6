"""Run by the official ``tidebase==0.7.0`` SDK's interpreter (a separate virtualenv): drives
``tidebase serve`` at TIDEBASE_URL and prints one JSON object of what it saw.

Usage: python drive.py SCENARIO [ARG]
"""

from __future__ import annotations

import json
import sys
import threading
import time

import tidebase  # the official SDK (stdlib only), not this project

tide = tidebase.Tidebase()
out: dict = {}


def basic() -> None:
    calls: list[str] = []

    def wf(ctx, inp):
        a = ctx.step("a", lambda: calls.append("a") or inp["n"] + 1, input=inp)
        b = ctx.step("b", lambda: calls.append("b") or a * 2, input={"a": a})
        return {"b": b}

    out["result"] = tide.run("sdk-basic", wf, input={"n": 1})
    out["calls"] = calls
    run = tide.runs.list()[0]
    out["run"] = {"status": run["status"], "workflowName": run["workflowName"], "id": run["id"]}
    out["events"] = [e["type"] for e in tide.runs.subscribe(run["id"])]


def resume() -> None:
    calls: list[str] = []
    crash = {"on": True}

    def wf(ctx, inp):
        a = ctx.step("a", lambda: calls.append("a") or "A")

        def b():
            calls.append("b")
            if crash["on"]:
                raise RuntimeError("crash in b")
            return "B"

        return a + ctx.step("b", b)

    run = tide.runs.create("sdk-resume", input={})
    try:
        tide.run("sdk-resume", wf, run_id=run["id"])
    except RuntimeError as exc:
        out["first"] = str(exc)
    out["after_crash"] = tide.runs.get(run["id"])["run"]["status"]
    crash["on"] = False
    out["result"] = tide.run("sdk-resume", wf, run_id=run["id"])
    out["calls"] = calls


def retries() -> None:
    tries = {"n": 0}

    def flaky():
        tries["n"] += 1
        if tries["n"] < 3:
            raise ValueError("not yet")
        return "ok"

    out["result"] = tide.run("sdk-retries", lambda ctx, inp: ctx.step("f", flaky, retries=2))
    out["tries"] = tries["n"]
    run_id = tide.runs.list()[0]["id"]
    steps = tide.runs.get(run_id)["steps"]
    out["step"] = {"status": steps[0]["status"], "attempt": steps[0]["attempt"]}


def gate() -> None:
    seen: dict = {}

    def wf(ctx, inp):
        decision = ctx.gate("approve", "Ship it?", data={"v": 1}, poll_s=0.05)
        return {"approved": decision.approved, "actor": decision.actor}

    def approver():
        while True:
            runs = [r for r in tide.runs.list() if r["workflowName"] == "sdk-gate"]
            if runs:
                detail = tide.runs.get(runs[0]["id"])
                if detail["gates"]:
                    g = detail["gates"][0]
                    seen["token_in_detail"] = g["resolveToken"]
                    seen["gate"] = g
                    return
            time.sleep(0.02)

    # The worker (this SDK) gets the resolve token from gates/begin; hand it over like a link.
    orig = tide.request
    tokens: list[str] = []

    def spy(method, path, body=None):
        answer = orig(method, path, body)
        if path.endswith("/gates/begin"):
            tokens.append(answer["gate"]["resolveToken"])
        return answer

    tide.request = spy  # type: ignore[method-assign]
    t = threading.Thread(target=approver)
    t.start()
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(tide.run("sdk-gate", wf)))
    worker.start()
    t.join(30)
    while not tokens:
        time.sleep(0.02)
    g = seen["gate"]
    resolved = orig(
        "POST",
        f"/runs/{g['runId']}/gates/{g['id']}/resolve",
        {"token": tokens[0], "decision": "approved", "actor": "sdk-human"},
    )
    worker.join(30)
    out["resolved"] = resolved["gate"]["status"]
    out["result"] = result
    out["token_hidden_in_detail"] = seen["token_in_detail"] is None


def cancel() -> None:
    run = tide.runs.create("sdk-cancel", input={"x": 1})
    out["cancelled"] = tide.runs.cancel(run["id"], reason="stop", actor="sdk")["cancelReason"]
    try:
        tide.run("sdk-cancel", lambda ctx, inp: ctx.step("s", lambda: 1), run_id=run["id"])
    except tidebase.RunCancelled:
        out["raised"] = "RunCancelled"


def watch_and_approve(run_id: str) -> None:
    """An in-process run waits at a gate: watch its SSE, resolve its gate with the token."""
    for event in tide.runs.subscribe(run_id):
        out.setdefault("events", []).append(event["type"])
        if event["type"] == "gate.opened":
            detail = tide.runs.get(run_id)
            g = detail["gates"][0]
            tide.request(
                "POST",
                f"/runs/{run_id}/gates/{g['id']}/resolve",
                {"token": g["resolveToken"], "decision": "approved", "actor": "sdk"},
            )


def state_usage_fanout() -> None:
    def child(ctx, inp):
        return ctx.step("square", lambda: inp["n"] * inp["n"], input=inp)

    def parent(ctx, inp):
        ctx.state.set({"phase": "fanout"}, reason="start", importance="checkpoint")
        ctx.state.patch({"progress": 0.5})
        ctx.state.save("halfway")
        ctx.usage.record(
            kind="llm",
            provider="openai",
            model="gpt-4o",
            input_tokens=10,
            output_tokens=5,
            cost_usd=0.01,
        )
        ctx.usage.record(kind="search", provider="serpapi", quantity=3, unit="queries")
        results = ctx.fanout(
            "squares",
            [{"name": f"sq-{n}", "workflow": child, "input": {"n": n}} for n in (2, 3)],
        )
        ctx.state.patch({"phase": "done"})
        return results

    out["result"] = tide.run("sdk-parent", parent, input={})
    run_id = next(r for r in tide.runs.list() if r["workflowName"] == "sdk-parent")["id"]
    detail = tide.runs.get(run_id)
    out["state"] = detail["state"]["value"]
    out["labeled"] = [v["label"] for v in detail["stateVersions"] if v["label"]]
    first = detail["stateVersions"][0]
    out["first_version"] = [first["reason"], first["importance"]]
    out["usage"] = [(u["model"], u["totalTokens"]) for u in detail["usage"]]
    out["quantities"] = [(u["kind"], u["quantity"], u["unit"]) for u in detail["usage"]]
    out["children"] = sorted(r["status"] for r in detail["childRuns"])
    out["edges"] = sorted((e["name"], e["edgeType"]) for e in detail["runEdges"])
    out["run_id"] = run_id


def session() -> None:
    s = tide.runs.attach("sdk-session", input={"q": 1}, heartbeat_s=None)
    out["step"] = s.step("one", lambda: 1)
    out["heartbeat"] = s.heartbeat()["run"]["status"]
    gate = s.gates.begin("approve", "ok?")
    out["gate_status"] = gate["status"] if isinstance(gate, dict) else None
    out["complete"] = s.complete({"done": True})["run"]["status"]


def async_workflow() -> None:
    import asyncio

    from tidebase.aio import AsyncTidebase

    atide = AsyncTidebase()

    async def draft() -> str:
        await asyncio.sleep(0)
        return "draft"

    async def wf(run, inp):
        plan = await run.step("plan", lambda: f"plan {inp['t']}")
        text = await run.step("draft", draft)
        await run.state_set({"plan": plan})
        await run.usage_record(kind="llm", input_tokens=3, output_tokens=4)
        return f"{plan}/{text}"

    out["result"] = asyncio.run(atide.run("sdk-async", wf, input={"t": "x"}))


def nonblocking_gate() -> None:
    s = tide.runs.attach("sdk-nb", heartbeat_s=None)
    first = s.gates.begin("approve", "ok?", data={"x": 1})
    again = s.gates.begin("approve", "ok?", data={"x": 1})
    out["same_id"] = first["gateId"] == again["gateId"]
    # The SDK's mapped gate leaves the token out; the worker's raw begin answer carries it.
    raw = tide.request(
        "POST", f"/runs/{s.run_id}/gates/begin", {"name": "approve", "prompt": "ok?"}
    )
    tide.request(
        "POST",
        f"/runs/{s.run_id}/gates/{first['gateId']}/resolve",
        {"token": raw["gate"]["resolveToken"], "decision": "approved", "actor": "a"},
    )
    out["get"] = s.gates.get(first["gateId"])["status"]
    out["replay"] = s.gates.begin("approve", "ok?")["status"]
    s.complete("ok")


def _wait(check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError("timed out waiting")


def _work(queue, **options):
    """tide.work in a thread; returns its stop function."""
    done = {"stop": False}
    t = threading.Thread(
        target=lambda: tide.work([queue], poll_s=0.05, stop=lambda: done["stop"], **options)
    )
    t.start()

    def stop():
        done["stop"] = True
        t.join(10)

    return stop


def enqueue_work(queue: str) -> None:
    """tide.enqueue + tide.work: the worker claims the run and executes the registered
    workflow; a flaky one is retried off the queue (max_attempts) and succeeds."""
    calls = {"flaky": 0}

    @tide.workflow("sdk-queued")
    def queued(run, inp):
        return run.step("double", lambda: inp["n"] * 2)

    @tide.workflow("sdk-flaky")
    def flaky(run, inp):
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise RuntimeError("first attempt dies")
        return run.step("ok", lambda: "ok")

    enq = tide.enqueue("sdk-queued", queue=queue, input={"n": 21})
    out["enqueued"] = enq["run"]["status"]
    retried = tide.enqueue("sdk-flaky", queue=queue, max_attempts=2)
    stop = _work(queue)
    try:
        for run_id in (enq["run"]["id"], retried["run"]["id"]):
            _wait(lambda run_id=run_id: tide.runs.get(run_id)["run"]["status"] == "completed")
    finally:
        stop()
    detail = tide.runs.get(enq["run"]["id"])
    out["result"] = detail["run"]["result"]
    out["events"] = [e["type"] for e in detail["events"]]
    again = tide.runs.get(retried["run"]["id"])
    out["retried"] = {
        "result": again["run"]["result"],
        "attempt": again["run"]["attempt"],
        "calls": calls["flaky"],
        "events": [e["type"] for e in again["events"]],
    }
    [stats] = [q for q in tide.queues.list() if q["name"] == queue]
    out["stats"] = {k: stats[k] for k in ("queued", "running", "completed")}


def dedupe_cancel(queue: str) -> None:
    a = tide.enqueue("sdk-dedupe", queue=queue, dedupe_key="only-one")
    b = tide.enqueue("sdk-dedupe", queue=queue, dedupe_key="only-one")
    out["same"] = a["run"]["id"] == b["run"]["id"]
    out["deduplicated"] = [a["deduplicated"], b["deduplicated"]]
    cancelled = tide.runs.cancel(a["run"]["id"], reason="not needed", actor="sdk")
    out["cancelled"] = [cancelled["status"], cancelled["cancelReason"], cancelled["cancelActor"]]
    out["again"] = tide.runs.cancel(a["run"]["id"])["status"]
    c = tide.enqueue("sdk-dedupe", queue=queue, dedupe_key="only-one")
    out["freed"] = c["deduplicated"] is False and c["run"]["id"] != a["run"]["id"]


def gate_cancel(queue: str) -> None:
    """A worker blocked on a gate unwinds with RunCancelled when the run is cancelled."""
    observed = []

    @tide.workflow("sdk-gated")
    def gated(run, inp):
        run.step("prepare", lambda: "ready")
        return run.gate("approve-it", "never answered", poll_s=0.05).decision

    enq = tide.enqueue("sdk-gated", queue=queue)
    run_id = enq["run"]["id"]
    stop = _work(queue, on_error=lambda error, run: observed.append(type(error).__name__))
    try:
        _wait(lambda: len(tide.runs.get(run_id)["gates"]) > 0)
        tide.runs.cancel(run_id, reason="sdk test", actor="sdk")
        _wait(lambda: bool(observed))
    finally:
        stop()
    detail = tide.runs.get(run_id)
    out["observed"] = observed
    out["status"] = [detail["run"]["status"], detail["run"]["cancelReason"]]


def schedules(queue: str) -> None:
    name = "sdk-sched-" + queue
    schedule = tide.schedules.set(name, cron="0 9 * * *", workflow_name="sdk-digest", queue=queue)
    out["schedule"] = {k: schedule[k] for k in ("name", "cron", "workflowName", "queue")}
    out["has_next"] = schedule["nextRunAt"] is not None
    out["listed"] = name in [s["name"] for s in tide.schedules.list()]
    out["deleted"] = tide.schedules.delete(name)
    out["after"] = name in [s["name"] for s in tide.schedules.list()]
    configured = tide.queues.configure(queue, concurrency=2, rate_per_minute=30)
    out["config"] = configured["config"]


def gate_timeout() -> None:
    """gates.begin(timeout_s=...) is stored by the server: once it passes, the gate is decided
    rejected by 'timeout'; a blocking gate with timeout_s ends (the SDK's own deadline or the
    server's decision, whichever it sees first) and the decision stays."""
    s = tide.runs.attach("sdk-gate-timeout", heartbeat_s=None)
    first = s.gates.begin("quick", "ok?", timeout_s=0.3)
    out["first"] = first["status"]
    time.sleep(0.5)
    late = s.gates.get(first["gateId"])
    out["late"] = [late["status"], late["actor"], late["payload"]]
    try:
        decision = s.gate("blocking", "ok?", timeout_s=0.5, poll_s=0.05)
        out["blocking"] = decision.decision
    except TimeoutError:
        out["blocking"] = "TimeoutError"
    time.sleep(0.1)
    gates = {g["name"]: g for g in tide.runs.get(s.run_id)["gates"]}
    out["blocking_gate"] = [gates["blocking"]["status"], gates["blocking"]["actor"]]
    s.complete("done")


def channels(url: str) -> None:
    """tide.run(..., channels=[...]): the run's channel hears its completion, signed."""
    hook = {"type": "webhook", "url": url, "secret": "s3cret", "events": ["run.completed"]}
    out["result"] = tide.run("sdk-chan", lambda ctx, inp: ctx.step("a", lambda: 7), channels=[hook])
    run_id = next(r for r in tide.runs.list() if r["workflowName"] == "sdk-chan")["id"]
    detail = tide.runs.get(run_id)
    out["deliveries"] = [(d["eventType"], d["status"]) for d in detail["channelDeliveries"]]
    out["run_id"] = run_id


scenario = sys.argv[1]
globals()[scenario](*sys.argv[2:])
print(json.dumps(out))
