"""The usage ledger: tokens and cost of every model call that really executed.

This is the async source; ``tidebase_core/_sync/usage.py`` is generated from it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import context
from .._run_base import check_run_id, usage_params
from ..errors import RunNotFound
from ..models import (
    AgentUsage,
    AttemptUsage,
    ModelUsage,
    StepUsage,
    UsageRecord,
    UsageSummary,
)

if TYPE_CHECKING:
    from .client import AsyncTidebase
    from .context import AsyncRunContext

__all__ = ["AsyncRunUsage", "AsyncUsage"]


class AsyncRunUsage:
    """``run.usage``: one ledger row per call, tagged with this run, its step and attempt.

    Written at once: tokens spent by an attempt that later crashes were really spent. A step
    that replays does not execute, so nothing is recorded again.
    """

    def __init__(self, run: AsyncRunContext) -> None:
        self._run = run

    async def record(
        self,
        kind: str = "llm",
        provider: str | None = None,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        total_tokens: int | None = None,
        cost_usd: Decimal | float | int | str | None = None,
        label: str | None = None,
        metadata: dict[str, Any] | None = None,
        agent: str | None = None,
        quantity: Decimal | float | int | str | None = None,
        unit: str | None = None,
    ) -> None:
        """Record one call's usage. Without ``cost_usd``, a known ``provider``/``model`` is
        priced from genai-prices (``cost_source`` says which price was used). ``agent``: the
        agent that made the call (``tide.usage.summary(...).by_agent``). ``quantity`` of
        ``unit``: usage counted in something other than tokens (``quantity=3,
        unit="searches"``)."""
        ex = self._run._execution
        params = usage_params(
            run_id=ex.run_id,
            attempt=ex.attempt,
            step=context.current_step.get(),
            kind=kind,
            provider=provider,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=total_tokens,
            cost_usd=cost_usd,
            label=label,
            metadata=metadata,
            agent=agent,
            quantity=quantity,
            unit=unit,
        )
        if not await self._run._db.record_usage(params):
            raise RunNotFound(ex.run_id)


class AsyncUsage:
    """``tide.usage``: the ledger's rows and totals."""

    def __init__(self, client: AsyncTidebase) -> None:
        self._client = client

    async def records(self, run_id: str) -> list[UsageRecord]:
        check_run_id(run_id)
        async with self._client._store.connection() as db:
            return await db.usage_records(run_id)

    async def summary(
        self,
        run_id: str | None = None,
        *,
        workflow: str | None = None,
        since: datetime | None = None,
        include_children: bool = False,
    ) -> UsageSummary:
        """Token and cost totals (``Decimal`` dollars), overall and by provider/model and agent;
        for one run also by attempt (crashed attempts' spend shown as such) and by step.

        ``include_children``: the run's child runs (and theirs) are included, as its budget
        counts them.
        """
        if run_id is not None:
            check_run_id(run_id)
        if since is not None and not isinstance(since, datetime):
            raise TypeError(f"since must be a datetime, got {type(since).__name__}")
        if not isinstance(include_children, bool):
            raise TypeError(f"include_children must be True or False, got {include_children!r}")
        async with self._client._store.connection() as db:
            rows = await db.summarize_usage(
                run_id=run_id, workflow=workflow, since=since, include_children=include_children
            )
            outcomes = (
                await db.attempt_outcomes(run_id, include_children=include_children)
                if run_id is not None and any(r[0] == 2 for r in rows)
                else {}
            )
        by_model: list[ModelUsage] = []
        by_agent: list[AgentUsage] = []
        by_attempt: list[AttemptUsage] = []
        by_step: list[StepUsage] = []
        for r in rows:
            totals: dict[str, Any] = {
                "calls": r[7],
                "input_tokens": r[8] or 0,
                "output_tokens": r[9] or 0,
                "total_tokens": r[10] or 0,
                "cost_usd": r[11] or Decimal(0),
                "priced_calls": r[12],
            }
            if r[0] == 0:
                by_model.append(ModelUsage(provider=r[1], model=r[2], **totals))
            elif r[0] == 1:
                by_agent.append(AgentUsage(agent=r[3], **totals))
            elif r[0] == 2:
                # No run.started for it (a session's attempt): it left no end either.
                outcome = outcomes.get((r[4], r[5]), "crashed")
                by_attempt.append(
                    AttemptUsage(run_id=r[4], attempt=r[5], outcome=outcome, **totals)
                )
            else:
                by_step.append(StepUsage(run_id=r[4], step=r[6], **totals))
        return UsageSummary(
            calls=sum(m.calls for m in by_model),
            input_tokens=sum(m.input_tokens for m in by_model),
            output_tokens=sum(m.output_tokens for m in by_model),
            total_tokens=sum(m.total_tokens for m in by_model),
            cost_usd=sum((m.cost_usd for m in by_model), Decimal(0)),
            by_model=by_model,
            by_agent=by_agent,
            by_attempt=by_attempt,
            by_step=by_step,
        )
