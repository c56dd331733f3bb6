"""Tidebase: durable execution for AI agents, checkpointed in your own Postgres.

Wrap the units of work of an agent run as steps; each result is checkpointed the moment it
completes, and re-invoking the same run after a crash replays completed steps and continues
at the first incomplete one.

    import tidebase

    @tidebase.step
    def fetch(url: str) -> str: ...

    @tidebase.workflow
    def research(topic: str) -> str:
        return summarize([fetch(u) for u in urls(topic)])

    research.run("tides", run_id="run_123")   # start, or resume after a crash
"""

from tidebase_core import (
    Budget,
    BudgetSpend,
    Event,
    ResumeDecision,
    RetryPolicy,
    RunContext,
    RunInfo,
    Runs,
    RunStatus,
    StepInfo,
    StepStatus,
    Tidebase,
    __version__,
    current_run,
    run_id,
)
from tidebase_core._sync.sessions import RunSession
from tidebase_core.decorators import durable_step, step, workflow
from tidebase_core.defaults import configure
from tidebase_core.queue_models import Enqueued, QueueInfo, Schedule, WebhookAttempt
from tidebase_core.webhooks import verify_webhook_signature

from . import errors

__all__ = [
    "Budget",
    "BudgetSpend",
    "Enqueued",
    "Event",
    "QueueInfo",
    "ResumeDecision",
    "RetryPolicy",
    "RunContext",
    "RunInfo",
    "RunSession",
    "RunStatus",
    "Runs",
    "Schedule",
    "StepInfo",
    "StepStatus",
    "Tidebase",
    "WebhookAttempt",
    "__version__",
    "configure",
    "current_run",
    "durable_step",
    "errors",
    "run_id",
    "step",
    "verify_webhook_signature",
    "workflow",
]
