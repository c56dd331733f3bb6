"""A model response as stored JSON, and back into the SDK's own types.

Output items are dumped with ``exclude_unset`` (and by alias): the SDK builds the next turn's
input from ``item.model_dump(exclude_unset=True)``, so a restored item must carry exactly the
fields the fresh one had, or the next request's hash would change on every replay.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import pydantic
from agents import ModelResponse, Usage
from agents.items import TResponseOutputItem
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseUsage,
)

from tidebase_core.operations import Usage as LedgerUsage

__all__ = [
    "completed_event",
    "dump_response",
    "load_response",
    "response_of_stream",
    "usage_rows",
]

_USAGE: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Usage)
_RESPONSE_FIELDS = {f.name for f in dataclasses.fields(ModelResponse)}


def dump_response(response: ModelResponse) -> dict[str, Any]:
    dumped: dict[str, Any] = {
        "output": [_dump_item(item) for item in response.output],
        "usage": _USAGE.dump_python(response.usage, mode="json"),
        "response_id": response.response_id,
    }
    for optional in ("request_id", "raw_usage"):
        value = getattr(response, optional, None)
        if value is not None:
            dumped[optional] = value
    return dumped


def load_response(stored: Mapping[str, Any]) -> ModelResponse:
    fields = {
        "output": [_load_item(item) for item in stored["output"]],
        "usage": _USAGE.validate_python(stored["usage"]),
        "response_id": stored.get("response_id"),
        **{k: v for k, v in stored.items() if k in ("request_id", "raw_usage")},
    }
    return ModelResponse(**{k: v for k, v in fields.items() if k in _RESPONSE_FIELDS})


def response_of_stream(completed: Response, streamed_items: Sequence[Any]) -> ModelResponse:
    """The ``ModelResponse`` the runner builds from a stream's ``response.completed`` event."""
    raw = completed.usage
    usage = Usage(requests=1)
    if raw is not None:
        usage = Usage(
            requests=1,
            input_tokens=raw.input_tokens or 0,
            output_tokens=raw.output_tokens or 0,
            total_tokens=raw.total_tokens or 0,
            input_tokens_details=raw.input_tokens_details,
            output_tokens_details=raw.output_tokens_details,
        )
    # Some backends leave the final output empty and stream the items only (as the runner knows).
    output = list(completed.output) or list(streamed_items)
    return ModelResponse(output=output, usage=usage, response_id=completed.id)


def completed_event(response: ModelResponse) -> ResponseCompletedEvent:
    """The one event a replayed stream yields: ``response.completed`` with the stored response.

    Built without validation so that it fits every ``openai`` version the SDK accepts.
    """
    usage = response.usage
    body = Response.model_construct(
        id=response.response_id or "",
        created_at=0,
        model="",
        object="response",
        output=list(response.output),
        tool_choice="auto",
        tools=[],
        top_p=None,
        parallel_tool_calls=False,
        status="completed",
        usage=ResponseUsage.model_construct(
            input_tokens=usage.input_tokens,
            input_tokens_details=usage.input_tokens_details,
            output_tokens=usage.output_tokens,
            output_tokens_details=usage.output_tokens_details,
            total_tokens=usage.total_tokens,
        ),
    )
    return ResponseCompletedEvent.model_construct(
        type="response.completed", response=body, sequence_number=0
    )


def usage_rows(
    response: ModelResponse, *, provider: str | None, model: str | None, agent: str | None = None
) -> list[LedgerUsage]:
    """The ledger row of one real model call. A cost the provider reported in its raw usage
    (OpenRouter, LiteLLM proxies: ``usage.cost``) wins over the ledger's price table."""
    usage = response.usage
    raw = getattr(response, "raw_usage", None)
    cost = raw.get("cost") if isinstance(raw, Mapping) else None
    details_in = getattr(usage, "input_tokens_details", None)
    details_out = getattr(usage, "output_tokens_details", None)
    return [
        LedgerUsage(
            provider=provider,
            model=model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens or None,
            cost_usd=_cost(cost),
            metadata={
                "cache_read_tokens": getattr(details_in, "cached_tokens", 0) or 0,
                "reasoning_tokens": getattr(details_out, "reasoning_tokens", 0) or 0,
                "response_id": response.response_id,
            },
            agent=agent,
        )
    ]


def _cost(value: Any) -> float | int | str | None:
    """A provider's reported cost, when it is a number (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    return value


def _dump_item(item: Any) -> Any:
    if isinstance(item, pydantic.BaseModel):
        return item.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return item  # provider-specific items arrive as plain dicts


def _load_item(item: Any) -> Any:
    kind = item.get("type") if isinstance(item, dict) else None
    cls = _output_item_classes().get(kind) if isinstance(kind, str) else None
    if cls is None:
        return item  # a provider-specific item: stored as the plain dict it arrived as
    try:
        return cls.model_validate(item)
    except pydantic.ValidationError:
        return item


@functools.cache
def _output_item_classes() -> dict[str, type[pydantic.BaseModel]]:
    """The SDK's output item classes by their ``type``, the union's discriminator (openai's
    ``PropertyInfo(discriminator="type")``, which pydantic does not read: a ``TypeAdapter`` of
    the union tries all of its members, and building it took 45 ms per process)."""
    union: Any = TResponseOutputItem
    if typing.get_origin(union) is typing.Annotated:
        union = typing.get_args(union)[0]
    classes: dict[str, type[pydantic.BaseModel]] = {}
    for cls in typing.get_args(union):
        for literal in typing.get_args(cls.model_fields["type"].annotation):
            classes.setdefault(literal, cls)
    return classes
