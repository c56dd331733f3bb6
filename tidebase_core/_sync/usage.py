"""The usage ledger: tokens and cost of every model call that really executed.

Generated from ``tidebase_core/_async/usage.py`` by ``tools/generate_sync.py``: edit that file, not this one.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from .. import context
from .._run_base import check_run_id, usage_params
from ..errors import RunNotFound
from ..models import ModelUsage, UsageRecord, UsageSummary

if TYPE_CHECKING:
    from .client import Tidebase
    from .context import RunContext

__all__ = ["RunUsage", "Usage"]


class RunUsage:
    """``run.usage``: one ledger row per call, tagged with this run, its step and attempt.

    Written at once: tokens spent by an attempt that later crashes were really spent. A step
    that replays does not execute, so nothing is recorded again.
    """

    def __init__(self, run: RunContext) -> None:
        self._run = run

    def record(
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
    ) -> None:
        """Record one call's usage. Without ``cost_usd``, a known ``provider``/``model`` is
        priced from genai-prices (``cost_source`` says which price was used)."""
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
        )
        if not self._run._db.record_usage(params):
            raise RunNotFound(ex.run_id)


class Usage:
    """``tide.usage``: the ledger's rows and totals."""

    def __init__(self, client: Tidebase) -> None:
        self._client = client

    def records(self, run_id: str) -> list[UsageRecord]:
        check_run_id(run_id)
        with self._client._store.connection() as db:
            return db.usage_records(run_id)

    def summary(
        self,
        run_id: str | None = None,
        *,
        workflow: str | None = None,
        since: datetime | None = None,
    ) -> UsageSummary:
        """Token and cost totals (``Decimal`` dollars), overall and by provider and model."""
        if run_id is not None:
            check_run_id(run_id)
        if since is not None and not isinstance(since, datetime):
            raise TypeError(f"since must be a datetime, got {type(since).__name__}")
        with self._client._store.connection() as db:
            rows = db.usage_by_model(run_id=run_id, workflow=workflow, since=since)
        by_model = [
            ModelUsage(
                provider=r[0],
                model=r[1],
                calls=r[2],
                input_tokens=r[3] or 0,
                output_tokens=r[4] or 0,
                total_tokens=r[5] or 0,
                cost_usd=r[6] or Decimal(0),
                priced_calls=r[7],
            )
            for r in rows
        ]
        return UsageSummary(
            calls=sum(m.calls for m in by_model),
            input_tokens=sum(m.input_tokens for m in by_model),
            output_tokens=sum(m.output_tokens for m in by_model),
            total_tokens=sum(m.total_tokens for m in by_model),
            cost_usd=sum((m.cost_usd for m in by_model), Decimal(0)),
            by_model=by_model,
        )
