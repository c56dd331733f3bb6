"""How durable operations' results are reduced to JSON for their checkpoints.

Pydantic AI's ``JSON_CODEC`` with one change: ``bytes`` become base64 text, not UTF-8 text.
A tool returning bytes hands the model base64 outside a run (Pydantic AI's own rendering of
bytes); through a UTF-8 dump the model would get the raw text instead, inside a run only.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, PydanticUserError, TypeAdapter

__all__ = ["TIDEBASE_CODEC", "TidebaseCodec"]

_BYTES_AS_BASE64 = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")


class TidebaseCodec:
    """A ``pydantic_ai.durable_exec.DurabilityCodec``: ``dump(tp, value)`` → JSON values,
    ``load(tp, payload)`` → the value again."""

    def __init__(self) -> None:
        self._adapters: dict[Any, TypeAdapter[Any]] = {}

    def _adapter(self, tp: Any) -> TypeAdapter[Any]:
        try:
            return self._adapters[tp]
        except KeyError:
            pass
        except TypeError:  # unhashable type expression: not cached
            return _make(tp)
        adapter = self._adapters[tp] = _make(tp)
        return adapter

    def dump(self, tp: Any, value: Any) -> Any:
        return self._adapter(tp).dump_python(value, mode="json")

    def load(self, tp: Any, payload: Any) -> Any:
        return self._adapter(tp).validate_python(payload)


def _make(tp: Any) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(tp, config=_BYTES_AS_BASE64)
    except PydanticUserError:  # a model or dataclass with a config of its own
        return TypeAdapter(tp)


TIDEBASE_CODEC = TidebaseCodec()
