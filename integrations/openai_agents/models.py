"""Model calls as durable operations: ``DurableModel`` wraps any SDK ``Model``,
``DurableModelProvider`` any ``ModelProvider``.

Each ``get_response`` / ``stream_response`` is the operation ``model.request`` (``#2``, ``#3`` …)
in the order the run makes them, with the request's hash (the model asked included) as the
divergence check. A fresh call
stores its response and its usage in one write; a replayed call returns the stored response and
records nothing. A call that failed with a provider error (``openai.APIError``, a timeout, a
dropped connection: what the SDK's retries and a workflow's fallback act on) is recorded too,
and raised again on replay when the run went on past it; the SDK's retry of it is the next
``model.request``, on the first attempt and on every resume alike.

A stream is checkpointed when its ``response.completed`` event arrives (a partial stream is
never a checkpoint, and its key is not reused); a replayed stream yields that one event. A
stream that fails after its provider reported usage (``response.failed`` carries it) has that
usage in the ledger, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import agents.exceptions
import openai
from agents import Model, ModelProvider, ModelResponse, ModelSettings
from agents.models.interface import ModelTracing
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.models.openai_responses import OpenAIResponsesModel
from openai.types.responses import Response, ResponseCompletedEvent, ResponseOutputItemDoneEvent

from tidebase_core.keys import current_scope
from tidebase_core.operations import ErrorCodec, Operation, Usage, durable_call, durable_stream
from tidebase_core.plugin import current_run

from .digests import model_request_digest
from .responses import (
    completed_event,
    dump_response,
    load_response,
    response_of_stream,
    usage_rows,
)

__all__ = ["MODEL_ERRORS", "AgentModelName", "DurableModel", "DurableModelProvider"]

_STEP = "model.request"

# ``ModelTimeoutError`` exists from openai-agents 0.10 on.
_SDK_TIMEOUT: tuple[type[BaseException], ...] = tuple(
    c for c in [getattr(agents.exceptions, "ModelTimeoutError", None)] if isinstance(c, type)
)
MODEL_ERRORS = ErrorCodec(openai.APIError, *_SDK_TIMEOUT, TimeoutError, ConnectionError)
"""A failed model call is an outcome when it failed like this: a provider's error (a 503 the
workflow falls back on), or the timeouts and dropped connections the SDK's retry acts on.
Recorded, and raised again as its class on replay (``MODEL_ERRORS.allow(...)`` adds classes)."""

# What a model call is asked (the positional arguments before ``tracing``).
Request = tuple[str | None, Any, ModelSettings, list[Any], Any, list[Any]]


class DurableModel(Model):
    """``inner`` whose calls are steps of the active run (a no-op outside a run).

    ``name`` is the model name the provider was asked for; the ledger uses the model's own
    ``model`` attribute when it has one. ``agent`` names the agent the model belongs to in the
    ledger (``by_agent``), when it is known.
    """

    def __init__(self, inner: Model, *, name: str | None = None, agent: str | None = None) -> None:
        if not isinstance(inner, Model):
            raise TypeError(
                f"DurableModel wraps an agents.Model instance, got {type(inner).__name__}; "
                "for a model name, use durable_run_config() so the provider resolves it"
            )
        self.inner = inner
        provider, model = _ledger_names(inner, name)
        self._identity = _identity(inner, name)
        self._usage: Callable[[ModelResponse], list[Usage]] = lambda response: usage_rows(
            response, provider=provider, model=model, agent=agent
        )
        self._op: Operation[ModelResponse] = Operation(
            _STEP, dump=dump_response, load=load_response, usage=self._usage, errors=MODEL_ERRORS
        )

    def __getattr__(self, name: str) -> Any:
        # The SDK probes models for optional capabilities with getattr: keep them visible.
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)

    def __repr__(self) -> str:
        return f"DurableModel({self.inner!r})"

    async def get_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: ModelSettings,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: ModelTracing,
        **options: Any,
    ) -> ModelResponse:
        request: Request = (
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
        )
        run = current_run()
        if run is None:
            return await self.inner.get_response(*request, tracing, **options)

        async def call() -> ModelResponse:
            return await self.inner.get_response(*request, tracing, **options)

        # ``op.dump`` runs as the call returns: before the SDK's retry adds to response.usage.
        return await durable_call(
            self._op,
            call,
            digest=model_request_digest(self._identity, *request, options, current_scope.get()),
            run=run,
        )

    async def stream_response(
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: ModelSettings,
        tools: list[Any],
        output_schema: Any,
        handoffs: list[Any],
        tracing: ModelTracing,
        **options: Any,
    ) -> AsyncIterator[Any]:
        request: Request = (
            system_instructions,
            input,
            model_settings,
            tools,
            output_schema,
            handoffs,
        )
        run = current_run()
        if run is None:
            async for event in self.inner.stream_response(*request, tracing, **options):
                yield event
            return
        done_items: list[Any] = []
        # The last response the stream reported usage for before completing (a
        # ``response.failed`` carries what the call used): in the ledger if it fails.
        reported: list[Response] = []

        def result_of(event: Any) -> ModelResponse | None:
            if isinstance(event, ResponseOutputItemDoneEvent):
                done_items.append(event.item)
            elif isinstance(event, ResponseCompletedEvent):
                return response_of_stream(event.response, done_items)
            else:
                response = getattr(event, "response", None)
                if isinstance(response, Response) and response.usage is not None:
                    reported[:] = [response]
            return None

        def spent() -> list[Usage]:
            return [row for r in reported for row in self._usage(response_of_stream(r, done_items))]

        # Every stream takes a key of its own: one cancelled before ``response.completed`` leaves
        # its key unwritten, and the next stream never reuses it. Closed with this generator
        # (the SDK closes it at a ``response.failed`` event), so that its usage is written then.
        events = durable_stream(
            self._op,
            lambda: self.inner.stream_response(*request, tracing, **options),
            digest=model_request_digest(self._identity, *request, options, current_scope.get()),
            result_of=result_of,
            replay=lambda response: [completed_event(response)],
            spent=spent,
            run=run,
        )
        async with aclosing(events):
            async for event in events:
                yield event

    def get_retry_advice(self, request: Any) -> Any:
        return self.inner.get_retry_advice(request)

    async def close(self) -> None:
        await self.inner.close()

    async def _cleanup_on_run_end(self, owner: object) -> None:
        cleanup = getattr(self.inner, "_cleanup_on_run_end", None)
        if cleanup is not None:
            await cleanup(owner)


class DurableModelProvider(ModelProvider):
    """``inner`` (the user's provider, kept) handing out ``DurableModel``s."""

    def __init__(self, inner: ModelProvider) -> None:
        if not isinstance(inner, ModelProvider):
            raise TypeError(
                f"DurableModelProvider wraps an agents.ModelProvider, got {type(inner).__name__}"
            )
        self.inner = inner

    def get_model(self, model_name: str | None) -> Model:
        agent = model_name.agent if isinstance(model_name, AgentModelName) else None
        name = None if model_name is None else str(model_name)
        model = self.inner.get_model(name)
        if isinstance(model, DurableModel):
            return model
        return DurableModel(model, name=name, agent=agent)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


class AgentModelName(str):
    """A model name given as ``Agent(model="gpt-4o-mini")``, as the agent's durable copy holds
    it: still the name (the SDK resolves it and its default settings as before), carrying the
    agent it belongs to, which the SDK does not tell the provider, for the ledger's
    ``by_agent``."""

    agent: str

    def __new__(cls, name: str, agent: str) -> AgentModelName:
        made = super().__new__(cls, name)
        made.agent = agent
        return made


def durable_model(model: Model, agent: str | None = None) -> DurableModel:
    """``model`` wrapped once (an already durable model is returned as it is)."""
    return model if isinstance(model, DurableModel) else DurableModel(model, agent=agent)


def _identity(inner: Model, name: str | None) -> str:
    """The model a request is sent to, for the request hash: the model's own name
    (``OpenAIResponsesModel(model=...)``, a LiteLLM model), else the name the provider was
    asked for, else the model's class."""
    own = getattr(inner, "model", None)
    if isinstance(own, str):
        return own
    return name if name is not None else f"{type(inner).__module__}.{type(inner).__qualname__}"


def _ledger_names(inner: Model, name: str | None) -> tuple[str | None, str | None]:
    """(provider, model) for the usage ledger."""
    own = getattr(inner, "model", None)
    model = own if isinstance(own, str) else name
    if isinstance(inner, OpenAIResponsesModel | OpenAIChatCompletionsModel):
        return "openai", model
    if model and "/" in model:  # the MultiProvider's "provider/model" names
        provider, _, rest = model.partition("/")
        return provider, rest
    return None, model
