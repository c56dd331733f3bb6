"""How JSON crosses the wire: already-encoded text out, undecoded text in.

``serialization`` encodes values once; the text goes to Postgres as ``jsonb`` without a second
``json.dumps``. Read back, ``jsonb`` stays raw text until something needs the value (a replayed
step decodes its own checkpoint, with its own type), so loading a run's thousand checkpoints
parses none of them.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.adapt import Buffer, Dumper, Loader

__all__ = ["ADAPTERS", "ExactJson", "JsonText"]


class JsonText(str):
    """JSON text produced by ``serialization``; sent as ``jsonb``."""

    __slots__ = ()


class ExactJson(str):
    """JSON text to be stored verbatim in a ``json`` column (checkpoints, run input/result).

    Sent as ``json``: a ``jsonb`` parameter would be normalized on the way in (key order,
    ``1e16`` → an integer, ``-0.0`` → ``0``) even when the column is ``json``.
    """

    __slots__ = ()


class _JsonTextDumper(Dumper):
    oid = 3802  # jsonb

    def dump(self, obj: Any) -> Buffer:
        return str(obj).encode()


class _ExactJsonDumper(_JsonTextDumper):
    oid = 114  # json


class _RawJsonLoader(Loader):
    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def _build() -> psycopg.adapt.AdaptersMap:
    adapters = psycopg.adapt.AdaptersMap(psycopg.adapters)
    adapters.register_dumper(JsonText, _JsonTextDumper)
    adapters.register_dumper(ExactJson, _ExactJsonDumper)
    adapters.register_loader("jsonb", _RawJsonLoader)
    adapters.register_loader("json", _RawJsonLoader)
    return adapters


ADAPTERS = _build()
