"""Client options: explicit arguments first, then ``TIDEBASE_*`` environment variables."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigurationError

__all__ = ["Settings", "default_home", "redact_dsn"]

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
    home: Path = field(default_factory=lambda: default_home())
    """Where the embedded server keeps its data (``pgdata``): ``TIDEBASE_HOME`` or
    :func:`default_home`, the same for every working directory."""
    max_connections: int = 10
    reconnect_seconds: float = 60.0
    """How long an operation waits for a lost database to come back before raising
    ``DatabaseUnavailable`` (``TIDEBASE_RECONNECT_SECONDS``)."""

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
        reconnect_seconds: float | None = None,
    ) -> Settings:
        env = os.environ
        url = database_url if database_url is not None else env.get("TIDEBASE_DATABASE_URL")
        if url is not None and (not isinstance(url, str) or not url.strip()):
            raise ConfigurationError(
                "database_url must be a non-empty Postgres URL such as "
                "'postgresql://user:password@host:5432/dbname', or None for the embedded server"
            )
        if url is not None:
            _check_url(url)
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
        reconnect = (
            reconnect_seconds
            if reconnect_seconds is not None
            else _env_float("TIDEBASE_RECONNECT_SECONDS")
        )
        if reconnect is None:
            reconnect = 60.0
        if (
            isinstance(reconnect, bool)
            or not isinstance(reconnect, int | float)
            or not 0 < reconnect < float("inf")
        ):
            raise ConfigurationError(
                f"reconnect_seconds must be a number of seconds > 0, got {reconnect!r}"
            )
        raw_home = home if home is not None else env.get("TIDEBASE_HOME") or None
        home_path = Path(raw_home).expanduser() if raw_home is not None else default_home()
        return cls(url, float(lease), schema, bool(auto_migrate), home_path, pool, float(reconnect))

    @property
    def safe_url(self) -> str:
        """The database URL with any password hidden, for messages."""
        if self.database_url is None:
            return f"embedded server in {self.home / 'pgdata'}"
        return redact_dsn(self.database_url)


def default_home() -> Path:
    """The embedded server's home unless ``TIDEBASE_HOME`` says otherwise: the user's data
    directory (``~/.local/share/tidebase`` on Linux, ``~/Library/Application Support/tidebase``
    on macOS), so every process of the user finds the same runs whatever its working directory."""
    import platformdirs

    return platformdirs.user_data_path("tidebase", appauthor=False)


REDACTED = "***"
# scheme://[user[:password]@]hosts/...: the userinfo ends at the LAST '@' that a host list and
# then the end of the URL follow, so a password holding '@', '?', '#', '/' or a quote, unencoded,
# is hidden whole (libpq reads '?' and '#' there as part of the password).
_URL_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^\s:/?#@'\"]*):(?P<pw>\S+?)@"
    r"(?=[^\s@/?#'\"]*(?:[/?#\s'\"]|$))"
)
# password=... as a URL query parameter (its value ends at the next '&')
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&;](?:password|pass|pwd|sslpassword)=)[^&\s'\"]*", re.I)
# password=... / password = '...' in a key=value DSN (libpq conninfo): an unquoted value ends at
# whitespace only ('&' is an ordinary character there).
_KV_PASSWORD = re.compile(
    r"(?P<key>(?<![\w.?&;])(?:password|sslpassword)\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|[^\s']+)",
    re.I,
)


def redact_dsn(text: str) -> str:
    """``text`` with every database password hidden: the one function used wherever a URL,
    a DSN or an error quoting one is shown (``postgresql://user:pw@host``, any scheme,
    ``?password=``, ``password=... `` and ``password='quoted value'`` in key=value DSNs)."""
    text = _URL_USERINFO.sub(rf"\g<scheme>\g<user>:{REDACTED}@", text)
    text = _QUERY_PASSWORD.sub(rf"\g<key>{REDACTED}", text)
    return _KV_PASSWORD.sub(rf"\g<key>{REDACTED}", text)


_URL_SCHEME = re.compile(r"^\s*(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")
_QUOTE = "urllib.parse.quote(password, safe='')"
# host[:port][,host[:port]]…, a host being a name or a bracketed IPv6 address
_HOST = r"(?:\[[^\]/]*\]|[^:\[\]/,]*)(?::\d*)?"
_HOSTS = re.compile(rf"^{_HOST}(?:,{_HOST})*$")


def _check_url(url: str) -> None:
    """Refuse URLs that psycopg would misread, or would refuse with a message quoting part of
    the password, saying why without showing the password."""
    match = _URL_SCHEME.match(url)
    if match is None:
        return  # a key=value DSN: libpq parses it
    if match["scheme"].lower() not in ("postgresql", "postgres"):
        raise ConfigurationError(
            f"database_url must be a postgresql:// URL or a key=value DSN, got a "
            f"{match['scheme']}:// URL ({redact_dsn(url)}). Tidebase connects with psycopg "
            "directly: write postgresql://user:password@host:5432/dbname"
        )
    if any(c.isspace() for c in url.strip()):
        # Not quoted: the space may be in the password, where no pattern can find its end.
        raise ConfigurationError(
            "database_url has a space in it: a space is written %20 in a URL (in the password, "
            f"{_QUOTE})"
        )
    rest = url.strip()[match.end() :]
    head = rest.partition("/")[0]  # where libpq looks for user:password@
    if head.count("@") > 1:
        raise ConfigurationError(
            f"database_url has an unencoded '@' in its user name or password "
            f"({redact_dsn(url)}): percent-encode it as %40 ({_QUOTE})"
        )
    if "@" not in head and "@" in rest and not _HOSTS.match(head):
        # postgresql://user:pa/ss@host/db: libpq reads "user:pa" as host and port.
        raise ConfigurationError(
            f"database_url has an '@' after its first '/' ({redact_dsn(url)}): a '/' in the "
            f"password is written %2F ({_QUOTE}), an '@' in the database name %40"
        )


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
