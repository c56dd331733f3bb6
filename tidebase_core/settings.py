"""Client options: explicit arguments first, then ``TIDEBASE_*`` environment variables."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigurationError

__all__ = ["Settings"]

_SCHEMA_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_FALSE = {"0", "false", "no", "off"}
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None
    """None: the embedded server under ``home``."""
    lease_seconds: float = 60.0
    schema: str = "tidebase"
    auto_migrate: bool = True
    home: Path = Path(".tidebase")
    max_connections: int = 10

    @classmethod
    def resolve(
        cls,
        database_url: str | None = None,
        *,
        lease_seconds: float | None = None,
        schema: str | None = None,
        auto_migrate: bool | None = None,
        max_connections: int | None = None,
        home: str | os.PathLike[str] | None = None,
    ) -> Settings:
        env = os.environ
        url = database_url if database_url is not None else env.get("TIDEBASE_DATABASE_URL")
        if url is not None and (not isinstance(url, str) or not url.strip()):
            raise ConfigurationError(
                "database_url must be a non-empty Postgres URL such as "
                "'postgresql://user:password@host:5432/dbname', or None for the embedded server"
            )
        lease = lease_seconds if lease_seconds is not None else _env_float("TIDEBASE_LEASE_SECONDS")
        if lease is None:
            lease = 60.0
        if isinstance(lease, bool) or not isinstance(lease, int | float) or not lease > 0:
            raise ConfigurationError(f"lease_seconds must be a number > 0, got {lease!r}")
        schema = schema if schema is not None else env.get("TIDEBASE_SCHEMA", "tidebase")
        if not isinstance(schema, str) or not _SCHEMA_RE.match(schema):
            raise ConfigurationError(
                f"schema must be a Postgres identifier (letters, digits, underscore, at most "
                f"63 characters, not starting with a digit), got {schema!r}"
            )
        if auto_migrate is None:
            auto_migrate = _env_bool("TIDEBASE_AUTO_MIGRATE", True)
        pool = max_connections if max_connections is not None else 10
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
            raise ConfigurationError(f"max_connections must be an int >= 1, got {pool!r}")
        home_path = Path(home if home is not None else env.get("TIDEBASE_HOME", ".tidebase"))
        return cls(url, float(lease), schema, bool(auto_migrate), home_path, pool)

    @property
    def safe_url(self) -> str:
        """The database URL with any password hidden, for messages."""
        if self.database_url is None:
            return f"embedded server in {self.home / 'pgdata'}"
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", self.database_url)


def _env_float(name: str) -> float | None:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number of seconds, got {raw!r}") from None


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _FALSE:
        return False
    if raw.lower() in _TRUE:
        return True
    raise ConfigurationError(f"{name} must be 0 or 1, got {raw!r}")
