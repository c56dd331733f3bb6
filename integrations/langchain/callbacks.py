"""``TidebaseCallbackHandler``: LangChain's callbacks, seen by the active run.

- It records the usage of a real model call that nothing else wrote (the handler used without
  ``install()``, whose wrapped calls write their own), and never of a replayed one.
- With ``events=True`` it appends ``langchain.model.*``, ``langchain.tool.*`` and
  ``langchain.chain.*`` events (``started``, ``completed``, ``failed``) with LangChain's run ids.

Outside a run every method returns at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from tidebase_core.plugin import (
    AnyRunContext,
    current_run,
    current_step_key,
    emit_event_sync,
    record_usage_sync,
)

from .codec import MARK, REPLAYED, REPLAYED_TOOL
from .models import agent_name, owned
from .usage import usage_rows

__all__ = ["TidebaseCallbackHandler"]

_HIDDEN = "langsmith:hidden"  # LangGraph's internal runnables (channel writes, branches)


class TidebaseCallbackHandler(BaseCallbackHandler):
    """Usage of real model calls, and (``events=True``) run events for models, tools, chains.

    Attach per call (``config={"callbacks": [TidebaseCallbackHandler()]}``) or let
    ``install(events=True)`` attach one to every LangChain call in the process. Each event is
    one write.
    """

    raise_error = True  # a cancelled or taken-over run must stop the chain, not be logged
    run_inline = True  # called in the caller's context, where the run and the call live

    def __init__(self, *, events: bool = True) -> None:
        self.events = events
        # LangChain run id → (provider, model, agent) of a chat-model call in progress: only
        # callbacks are told which model a call uses (for the usage row of a cache=False call).
        self._models: dict[UUID, tuple[str | None, str | None, str | None]] = {}
        # LangChain run ids of replayed tool calls in progress (their end event says so).
        self._replayed_tools: set[UUID] = set()

    # -- chat models ------------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = current_run()
        if run is None:
            return
        meta = metadata or {}
        params = kwargs.get("invocation_params") or {}
        model = _text(meta.get("ls_model_name")) or _text(params.get("model"))
        self._models[run_id] = (_text(meta.get("ls_provider")), model, agent_name(meta))
        self._emit(run, "langchain.model.started", run_id, parent_run_id, _model_fields(metadata))

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = current_run()
        if run is not None:
            self._emit(
                run, "langchain.model.started", run_id, parent_run_id, _model_fields(metadata)
            )

    def on_llm_end(
        self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None, **_: Any
    ) -> None:
        run = current_run()
        if run is None:
            return
        provider, model, agent = self._models.pop(run_id, (None, None, None))
        generations = [g for batch in response.generations for g in batch]
        if not owned():  # an owned call's writer records its usage with its checkpoint
            unrecorded = [
                g.message
                for g in generations
                if isinstance(g, ChatGeneration) and MARK not in (g.generation_info or {})
            ]
            for row in usage_rows(unrecorded, provider, model, agent):
                record_usage_sync(run, **row.fields())
        replayed = bool(generations) and all(
            (g.generation_info or {}).get(MARK) == REPLAYED for g in generations
        )
        self._emit(run, "langchain.model.completed", run_id, parent_run_id, {"replayed": replayed})

    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **_: Any,
    ) -> None:
        run = current_run()
        if run is None:
            return
        self._models.pop(run_id, None)
        self._emit(run, "langchain.model.failed", run_id, parent_run_id, _error(error))

    # -- tools (a replayed durable tool call fires them too, its metadata marking it) ----------

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        run = current_run()
        if run is not None:
            replayed = bool((metadata or {}).get(REPLAYED_TOOL))
            if replayed:
                self._replayed_tools.add(run_id)
            fields = {
                "name": serialized.get("name"),
                "tool_call_id": kwargs.get("tool_call_id"),
                "replayed": replayed,
            }
            self._emit(run, "langchain.tool.started", run_id, parent_run_id, fields)

    def on_tool_end(
        self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **_: Any
    ) -> None:
        run = current_run()
        if run is not None:
            fields = {"replayed": run_id in self._replayed_tools}
            self._replayed_tools.discard(run_id)
            self._emit(run, "langchain.tool.completed", run_id, parent_run_id, fields)

    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **_: Any,
    ) -> None:
        run = current_run()
        if run is not None:
            fields = {**_error(error), "replayed": run_id in self._replayed_tools}
            self._replayed_tools.discard(run_id)
            self._emit(run, "langchain.tool.failed", run_id, parent_run_id, fields)

    # -- chains (and LangGraph nodes) ---------------------------------------------------------

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        run = current_run()
        if run is not None and _HIDDEN not in (tags or ()):
            fields = {"name": kwargs.get("name") or _class_name(serialized)}
            self._emit(run, "langchain.chain.started", run_id, parent_run_id, fields)

    def on_chain_end(
        self,
        outputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **_: Any,
    ) -> None:
        run = current_run()
        if run is not None and _HIDDEN not in (tags or ()):
            self._emit(run, "langchain.chain.completed", run_id, parent_run_id, {})

    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        **_: Any,
    ) -> None:
        run = current_run()
        if run is not None and _HIDDEN not in (tags or ()):
            self._emit(run, "langchain.chain.failed", run_id, parent_run_id, _error(error))

    def _emit(
        self,
        run: AnyRunContext,
        type: str,
        run_id: UUID,
        parent_run_id: UUID | None,
        fields: dict[str, Any],
    ) -> None:
        if not self.events:
            return
        payload = {
            "langchain_run_id": str(run_id),
            "parent_run_id": None if parent_run_id is None else str(parent_run_id),
            "step": current_step_key(),
            **fields,
        }
        # Part of this attempt's work, not a workflow-body operation: callbacks fire
        # differently on replay (a replayed call is marked replayed), so they are never skipped.
        emit_event_sync(run, type, payload)


def _model_fields(metadata: dict[str, Any] | None) -> dict[str, Any]:
    meta = metadata or {}
    return {"provider": meta.get("ls_provider"), "model": meta.get("ls_model_name")}


def _class_name(serialized: dict[str, Any] | None) -> str | None:
    ids: Sequence[Any] = (serialized or {}).get("id") or ()
    return str(ids[-1]) if ids else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _error(error: BaseException) -> dict[str, Any]:
    return {"error": {"type": type(error).__name__, "message": str(error)[:500]}}
