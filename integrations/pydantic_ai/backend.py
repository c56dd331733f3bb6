"""One durable operation of Pydantic AI (a model request, a tool call …) as one step of the run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from pydantic_ai.durable_exec import (
    DurableOperationId,
    JournalCallableOperationBackend,
    ModelCompactMessagesId,
    ModelRequestId,
)
from tidebase_core.plugin import current_run, run_async_step

from .digests import operation_digest
from .usage import usage_rows

__all__ = ["TidebaseOperationBackend"]

# Operations that call the model: their usage goes to the ledger.
_MODEL_CALLS = (ModelRequestId, ModelCompactMessagesId)


class TidebaseOperationBackend(JournalCallableOperationBackend[None]):
    """``execute`` is ``run.step``: the key is the operation's journal name in order of
    occurrence (``name``, ``name#2`` …), the input hash comes from ``digests``, and a model
    request's usage is written with its checkpoint."""

    async def execute(
        self,
        *,
        operation_id: DurableOperationId,
        name: str,
        body: Callable[[], Awaitable[object]],
        cache_key: tuple[object, ...],
        config: None,
    ) -> object:
        run = current_run()
        # The capability only dispatches here inside a run (``in_durable_context``).
        assert run is not None
        # A failure is recorded on the step (resumed runs execute it again) and Pydantic AI
        # sees the error itself, so fallbacks, retries and the caller's handlers still work.
        return await run_async_step(
            run,
            run.next_key(name),
            body,
            digest=operation_digest(operation_id, cache_key),
            usage=usage_rows if isinstance(operation_id, _MODEL_CALLS) else None,
        )
