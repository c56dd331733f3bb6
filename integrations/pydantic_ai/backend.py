"""One durable operation of Pydantic AI (a model request, a tool call …) as one durable call.

Keys: operations of an agent run are keyed under that run's own key (``triage__run/``; see
``TidebaseDurability.wrap_run``). Inside it, model requests and other operations follow their
order of occurrence (``triage__model.request#2``); tool calls are keyed by the call id of the
(replayed) model response, so parallel calls keep their keys whatever order they finish in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

from pydantic_ai.durable_exec import (
    DurableOperationId,
    JournalCallableOperationBackend,
    ModelCompactMessagesId,
    ModelRequestId,
    ToolsetCallToolId,
)
from pydantic_ai.exceptions import AgentRunError
from pydantic_ai.messages import ModelResponse
from tidebase_core.keys import current_scope
from tidebase_core.operations import ErrorCodec, Operation, Usage, durable_call
from tidebase_core.plugin import AnyRunContext, current_run

from .codec import JOURNAL_CONTEXT, plain_adapter
from .digests import operation_digest
from .usage import usage_rows

__all__ = ["TidebaseOperationBackend"]

try:  # Pydantic AI >= 2.6x: a streamed request's failure carries what the stream produced
    from pydantic_ai.durable_exec._utils import (
        mark_streamed_before_failing,
        streamed_before_failing,
    )
except ImportError:  # pragma: no cover - older releases mark nothing

    def streamed_before_failing(error: BaseException) -> ModelResponse | None:
        return None

    def mark_streamed_before_failing(error: BaseException, response: ModelResponse) -> None:
        return None


class ModelErrors(ErrorCodec):
    """A model request that failed (a provider's 503, a refusal) is an outcome the agent's
    caller may act on (fall back to another agent): recorded, and raised again on replay.

    A streamed request that failed after it produced output carries that output on its
    exception (Pydantic AI's mark: the run then treats it as a stream that had started, not
    one to retry or fall back from as if never sent); it is stored with the exception and put
    back on the replayed one, so the run takes the same path again."""

    def dump(self, exc: BaseException) -> dict[str, Any]:
        stored = super().dump(exc)
        response = streamed_before_failing(exc)
        if response is not None:
            stored["streamed"] = plain_adapter(ModelResponse).dump_python(response, mode="json")
        return stored

    def load(self, stored: Mapping[str, Any]) -> BaseException:
        exc = super().load(stored)
        if stored.get("streamed") is not None:
            streamed = plain_adapter(ModelResponse).validate_python(
                stored["streamed"], context=JOURNAL_CONTEXT
            )
            mark_streamed_before_failing(exc, streamed)
        return exc


MODEL_ERRORS = ModelErrors(AgentRunError)


def spent(error: BaseException, agent: str | None) -> list[Usage]:
    """What a streamed request that failed mid-way had used (its partial response's usage)."""
    response = streamed_before_failing(error)
    if response is None:
        return []
    return usage_rows(plain_adapter(ModelResponse).dump_python(response, mode="json"), agent=agent)


_MODEL_CALLS = (ModelRequestId, ModelCompactMessagesId)
_operations: dict[tuple[str, str | None], Operation[Any]] = {}


def _operation(name: str, agent: str | None) -> Operation[Any]:
    """The operation ``name``: a model call of ``agent`` (ledgered under its name), or, with
    ``agent=None``, any other operation."""
    op = _operations.get((name, agent))
    if op is None:
        op = _operations.setdefault(
            (name, agent),
            Operation(
                name,
                usage=partial(usage_rows, agent=agent),
                errors=MODEL_ERRORS,
                spent=partial(spent, agent=agent),
            )
            if agent is not None
            else Operation(name),
        )
    return op


class TidebaseOperationBackend(JournalCallableOperationBackend[None]):
    """``execute`` is ``durable_call``: the framework already reduced the result to JSON."""

    def __init__(self, *, agent_name: str, **options: Any) -> None:
        super().__init__(agent_name=agent_name, **options)
        self.agent_name = agent_name

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
        identity = None
        if isinstance(operation_id, ToolsetCallToolId):
            identity = getattr(cache_key[2], "tool_call_id", None)
        return await durable_call(
            _operation(name, self.agent_name if isinstance(operation_id, _MODEL_CALLS) else None),
            body,
            digest=operation_digest(operation_id, cache_key, _agent_run_scope(run)),
            identity=identity,
            run=run,
        )


def _agent_run_scope(run: AnyRunContext) -> object | None:
    """The key scope of the agent run this operation belongs to, if it has one: the chain its
    model requests' digests are computed along (see ``digests.request_digest``)."""
    scope = current_scope.get()
    return scope if scope is not None and scope in run._execution.named_scopes.values() else None
