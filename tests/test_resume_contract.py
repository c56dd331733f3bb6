"""The replay contract: one function decides what a step may do on resume, and it is kept."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tidebase import ResumeDecision, RetryPolicy, RunContext, Tidebase
from tidebase.errors import StepFailed, StepNotFound, StepNotParked
from tidebase_core.replay import StepPolicy, resume_decision

FAST = RetryPolicy(max_retries=2, initial_delay=0.001, max_delay=0.01)


@pytest.mark.parametrize(
    ("declared", "retries_left", "expected"),
    [
        ({}, 0, "safe_replay"),
        ({"side_effects": ["read"]}, 0, "safe_replay"),
        ({"side_effects": ["email"]}, 0, "manual_review"),
        ({"side_effects": ["read", "payment"]}, 0, "manual_review"),
        ({"side_effects": ["email"], "idempotency_key": "send-1"}, 0, "safe_replay"),
        ({"replay": "manual"}, 0, "manual_review"),
        ({"replay": "never"}, 0, "failed"),
        ({"replay": "auto", "side_effects": ["email"]}, 0, "safe_replay"),
        ({"replay": "never", "side_effects": ["email"], "idempotency_key": "k"}, 0, "failed"),
        ({}, 2, "failed_retryable"),
        ({"side_effects": ["email"]}, 1, "failed_retryable"),
        ({"replay": "never"}, 1, "failed_retryable"),
    ],
)
def test_resume_decision_table(declared: dict, retries_left: int, expected: str) -> None:
    policy = StepPolicy.build(
        "s",
        side_effects=declared.get("side_effects"),
        idempotency_key=declared.get("idempotency_key"),
        replay=declared.get("replay"),
        retries=0,
    )
    assert resume_decision(policy, retries_left=retries_left) == ResumeDecision(expected)


def test_retries_retry_with_backoff_and_store_failed_retryable(tide: Tidebase) -> None:
    tries: list[float] = []

    def flaky() -> str:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise ConnectionError("try again")
        return "ok"

    def wf(run: RunContext, input: None) -> str:
        return run.step("call", flaky, retries=FAST)

    assert tide.run("wf", wf, run_id="r") == "ok"
    assert len(tries) == 3
    failures = [e for e in tide.runs.events("r") if e.type == "step.failed"]
    assert [(e.payload["try"], e.payload["decision"]) for e in failures] == [
        (1, "failed_retryable"),
        (2, "failed_retryable"),
    ]
    (step,) = tide.runs.steps("r")
    assert (step.status, step.output, step.error) == ("completed", "ok", None)


def test_exhausted_retries_fail_the_run_with_the_decision_on_step_and_run(tide: Tidebase) -> None:
    def wf(run: RunContext, input: None) -> str:
        return run.step("send", lambda: 1 / 0, side_effects=["email"], retries=FAST)

    # The body's own exception, with a note naming the step and its resume decision.
    with pytest.raises(ZeroDivisionError) as info:
        tide.run("wf", wf, run_id="r")
    assert info.value.__notes__ == [
        "tidebase: step 'send' of run 'r' failed after 3 tries; resume decision: manual_review"
    ]
    (step,) = tide.runs.steps("r")
    assert (step.status, step.resume_decision) == ("failed", "manual_review")
    assert step.error is not None and step.error["type"] == "ZeroDivisionError"
    run = tide.runs.get("r")
    assert (run.status, run.failure_class) == ("failed", "manual_review")


def test_a_step_parked_for_review_does_not_run_again_until_released(tide: Tidebase) -> None:
    sent: list[str] = []
    fail = {"on": True}

    def send() -> str:
        sent.append("email")
        if fail["on"]:
            raise TimeoutError("the mail server timed out (did it send?)")
        return "sent"

    def wf(run: RunContext, input: None) -> str:
        return run.step("send", send, side_effects=["email"])

    with pytest.raises(TimeoutError, match="did it send"):
        tide.run("wf", wf, run_id="r")
    fail["on"] = False
    with pytest.raises(StepFailed, match="parked for manual review") as info:
        tide.run("wf", wf, run_id="r")
    assert info.value.decision is ResumeDecision.MANUAL_REVIEW
    assert "tide.runs.retry_step('r', 'send')" in str(info.value)
    assert sent == ["email"]  # parked: not executed a second time

    tide.runs.retry_step("r", "send", actor="ops@example.com")
    assert tide.run("wf", wf, run_id="r") == "sent"
    assert sent == ["email", "email"]
    assert any(
        e.type == "step.retry_approved" and e.payload["actor"] == "ops@example.com"
        for e in tide.runs.events("r")
    )


def test_an_operator_can_record_a_parked_steps_result_instead(tide: Tidebase) -> None:
    def charge() -> dict:
        raise RuntimeError("gateway 502 after the charge went through")

    def wf(run: RunContext, input: None) -> dict:
        receipt = run.step("charge", charge, side_effects=["payment"], replay="never")
        return {"receipt": receipt}

    with pytest.raises(RuntimeError, match="gateway 502"):
        tide.run("wf", wf, run_id="r")
    assert tide.runs.get("r").failure_class is ResumeDecision.FAILED
    with pytest.raises(StepFailed, match="replay='never'") as info:
        tide.run("wf", wf, run_id="r")
    assert info.value.decision is ResumeDecision.FAILED
    with pytest.raises(StepFailed, match="replay='never'"):
        tide.run("wf", wf, run_id="r")

    tide.runs.complete_step("r", "charge", {"id": "ch_1"}, actor="ops")
    assert tide.run("wf", wf, run_id="r") == {"receipt": {"id": "ch_1"}}
    with pytest.raises(StepNotParked):
        tide.runs.complete_step("r", "charge", {"id": "ch_2"})
    with pytest.raises(StepNotFound):
        tide.runs.retry_step("r", "refund")


def test_idempotent_side_effects_replay_safely(tide: Tidebase) -> None:
    sent: list[str] = []
    fail = {"on": True}

    def send() -> str:
        sent.append("email")
        if fail["on"]:
            raise TimeoutError("timeout")
        return "sent"

    def wf(run: RunContext, input: None) -> str:
        return run.step("send", send, side_effects=["email"], idempotency_key=f"send-{run.run_id}")

    with pytest.raises(TimeoutError):
        tide.run("wf", wf, run_id="r")
    assert tide.runs.get("r").failure_class is ResumeDecision.SAFE_REPLAY
    fail["on"] = False
    assert tide.run("wf", wf, run_id="r") == "sent"
    assert sent == ["email", "email"]
    (step,) = tide.runs.steps("r")
    assert step.idempotency_key == "send-r"


WORKER = """
import os, sys
from tidebase import Tidebase
def wf(run, input):
    run.step("prepare", lambda: "ready")
    def charge():
        print("CHARGING", flush=True)
        sys.stdin.readline()  # killed here, after the charge may have happened
        return "charged"
    return run.step("charge", charge, side_effects=["payment"])
print("RESULT", Tidebase().run("checkout", wf, run_id="order-1"), flush=True)
"""


@pytest.mark.slow
def test_a_crash_inside_an_unsafe_step_parks_it_instead_of_charging_twice(
    tide: Tidebase, tidebase_env: dict[str, str], tmp_path: Path
) -> None:
    script = tmp_path / "checkout.py"
    script.write_text(WORKER)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        env=tidebase_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "CHARGING"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()

    (_, charge) = tide.runs.steps("order-1")
    assert (charge.name, charge.status, charge.resume_decision) == (
        "charge",
        "running",
        "manual_review",
    )
    charged: list[str] = []

    def wf(run: RunContext, input: None) -> str:
        run.step("prepare", lambda: "ready")
        return run.step(
            "charge", lambda: charged.append("x") or "charged", side_effects=["payment"]
        )

    with pytest.raises(StepFailed, match="interrupted in attempt 1") as info:
        tide.run("checkout", wf, run_id="order-1")
    assert info.value.decision is ResumeDecision.MANUAL_REVIEW and charged == []
    run = tide.runs.get("order-1")
    assert (run.status, run.failure_class) == ("failed", "manual_review")

    tide.runs.complete_step("order-1", "charge", "charged", actor="ops")
    assert tide.run("checkout", wf, run_id="order-1") == "charged"
    assert charged == []
