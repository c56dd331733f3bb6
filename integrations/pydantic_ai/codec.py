"""How durable operations' results are reduced to JSON for their checkpoints.

Pydantic AI's ``JSON_CODEC`` with three changes:

- ``bytes`` become base64 text, not UTF-8 text (the engine's own adapters, ``type_adapter``,
  built once per type for every plugin). A tool returning bytes hands the model base64
  outside a run (Pydantic AI's own rendering of bytes); through a UTF-8 dump the model would
  get the raw text instead, inside a run only.
- Payloads load with Pydantic AI's journal context, as its own JSON codec loads them: a tool
  result checkpointed by a release that did not yet record the files in its content
  (``content_file_digests``; 2.62, the oldest release this plugin supports, records none) gets
  its files back as files after an upgrade, not as plain dicts.
- A model response is priced before it is dumped, by Pydantic AI's own ``fill_response_cost``
  (which the framework calls on every response right after the request anyway, and which
  keeps a cost already set, such as a gateway's). The checkpoint then carries the cost: the
  ledger row takes it as the framework's (``cost_source='given'``) instead of pricing the
  tokens a second time, and the framework finds it set and does not price again either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter

from pydantic_ai.messages import ModelResponse
from tidebase_core.plugin import type_adapter

try:  # private, but the framework's own pricing step (in every release this plugin supports)
    from pydantic_ai._genai_prices import fill_response_cost
except ImportError:  # pragma: no cover - then the ledger prices the tokens itself

    def fill_response_cost(response: ModelResponse) -> None:
        return None


try:  # private, but what the framework's own codecs load journals with (releases that record files)
    from pydantic_ai.messages import _JOURNAL_CONTEXT as JOURNAL_CONTEXT
except ImportError:  # pragma: no cover - older releases record no files: nothing to rebuild
    JOURNAL_CONTEXT: Mapping[str, Any] | None = None  # type: ignore[no-redef]

__all__ = ["JOURNAL_CONTEXT", "TIDEBASE_CODEC", "TidebaseCodec", "plain_adapter"]


class TidebaseCodec:
    """A ``pydantic_ai.durable_exec.DurabilityCodec``: ``dump(tp, value)`` → JSON values,
    ``load(tp, payload)`` → the value again."""

    def dump(self, tp: Any, value: Any) -> Any:
        if isinstance(value, ModelResponse):
            fill_response_cost(value)
        return type_adapter(tp).dump_python(value, mode="json")

    def load(self, tp: Any, payload: Any) -> Any:
        return type_adapter(tp).validate_python(payload, context=JOURNAL_CONTEXT)


_plain_adapters: dict[Any, TypeAdapter[Any]] = {}


def plain_adapter(tp: Any) -> TypeAdapter[Any]:
    """pydantic's own adapter of ``tp``, built the first time it is needed (an
    ``AgentRunResult`` adapter takes 0.1 s to build): for the stored shapes that predate the
    codec (whole agent runs, a failed stream's response), whose bytes are UTF-8 text."""
    try:
        return _plain_adapters[tp]
    except KeyError:
        adapter = _plain_adapters[tp] = TypeAdapter(tp)
        return adapter
    except TypeError:  # unhashable type expression: not cached
        return TypeAdapter(tp)


TIDEBASE_CODEC = TidebaseCodec()
