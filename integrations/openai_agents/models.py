"""Model calls as steps: ``DurableModel`` wraps any SDK ``Model``, ``DurableModelProvider``
any ``ModelProvider``.

Each ``get_response`` / ``stream_response`` is a step keyed ``model.request`` (``#2``, ``#3`` …)
in the order the run makes them, with the request's hash as the divergence check. A fresh call
stores its response and its usage in one write; a replayed call returns the stored response and
records nothing. A stream is checkpointed when its ``response.completed`` event arrives (a
partial stream is never a checkpoint); a replayed stream yields that one event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from agents import Model, ModelProvider, ModelResponse, ModelSettings
from agents.models.interface import ModelTracing
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from agents.models.openai_responses import OpenAIResponsesModel
from openai.types.responses import ResponseCompletedEvent, ResponseOutputItemDoneEvent

from tidebase_core.plugin import AnyRunContext, current_run, decode_json, save_checkpoint

from .digests import model_request_digest
from .responses import (
    completed_event,
    dump_response,
    load_response,
    response_of_stream,
    usage_rows,
)
from .steps import give_back_key, run_as_step, take_key

__all__ = ["DurableModel", "DurableModelProvider"]

_STEP = "model.request"

# What a model call is asked (the positional arguments before ``tracing``).
Request = tuple[str | None, Any, ModelSettings, list[Any], Any, list[Any]]


class DurableModel(Model):
    """``inner`` whose calls are steps of the active run (a no-op outside a run).

    ``name`` is the model name the provider was asked for; the ledger uses the model's own
    ``model`` attribute when it has one.
    """

    def __init__(self, inner: Model, *, name: str | None = None) -> None:
        if not isinstance(inner, Model):
            raise TypeError(
                f"DurableModel wraps an agents.Model instance, got {type(inner).__name__}; "
                "for a model name, use durable_run_config() so the provider resolves it"
            )
        self.inner = inner
        self._provider, self._model = _ledger_names(inner, name)

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
        digest = model_request_digest(*request, options)
        key = take_key(run, _STEP)
        fresh: list[ModelResponse] = []

        async def call() -> dict[str, Any]:
            response = await self.inner.get_response(*request, tracing, **options)
            fresh.append(response)
            return dump_response(response)  # before the SDK's retry adds to response.usage

        try:
            stored = await run_as_step(run, key, call, digest=digest, usage=self._usage)
        except BaseException:
            give_back_key(run, _STEP, key)
            raise
        return fresh[0] if fresh else load_response(stored)

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
        digest = model_request_digest(*request, options)
        key = take_key(run, _STEP)
        stored = run.checkpoint_of(key, digest)
        if stored is not None:
            yield completed_event(load_response(decode_json(stored)))
            return
        async for event in self._stream_fresh(run, key, digest, request, tracing, options):
            yield event

    async def _stream_fresh(
        self,
        run: AnyRunContext,
        key: str,
        digest: str,
        request: Request,
        tracing: ModelTracing,
        options: dict[str, Any],
    ) -> AsyncIterator[Any]:
        done_items: list[Any] = []
        saved = False
        try:
            async for event in self.inner.stream_response(*request, tracing, **options):
                if isinstance(event, ResponseOutputItemDoneEvent):
                    done_items.append(event.item)
                elif isinstance(event, ResponseCompletedEvent):
                    dumped = dump_response(response_of_stream(event.response, done_items))
                    await save_checkpoint(run, key, digest, dumped, usage=self._usage(dumped))
                    saved = True
                yield event
        finally:
            if not saved:
                give_back_key(run, _STEP, key)

    def _usage(self, stored: dict[str, Any]) -> list[dict[str, Any]]:
        return usage_rows(stored, provider=self._provider, model=self._model)

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
        model = self.inner.get_model(model_name)
        return model if isinstance(model, DurableModel) else DurableModel(model, name=model_name)

    async def aclose(self) -> None:
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()


def durable_model(model: Model) -> DurableModel:
    """``model`` wrapped once (an already durable model is returned as it is)."""
    return model if isinstance(model, DurableModel) else DurableModel(model)


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
