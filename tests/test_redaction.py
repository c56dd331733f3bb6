"""Passwords never appear in a message, a repr or an error, whatever the URL or DSN form: one
function, ``redact_dsn``, and a table of every form."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidebase import Tidebase
from tidebase.aio import AsyncTidebase
from tidebase.errors import ConfigurationError, DatabaseUnavailable
from tidebase_core.settings import Settings, redact_dsn

SECRET = "s3cr3t"

# (text, expected after redaction)
CASES = [
    ("postgresql://u:s3cr3t@h/db", "postgresql://u:***@h/db"),
    ("postgres://u:s3cr3t@h:5432/db", "postgres://u:***@h:5432/db"),
    ("postgresql://u:s3cr3t@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
    ("postgresql://u@h/db?password=s3cr3t", "postgresql://u@h/db?password=***"),
    (
        "postgresql://u@h/db?sslmode=require&password=s3cr3t&application_name=x",
        "postgresql://u@h/db?sslmode=require&password=***&application_name=x",
    ),
    ("postgresql://u@h/db?PASSWORD=s3cr3t", "postgresql://u@h/db?PASSWORD=***"),
    ("postgresql://u@h/db?password=s3cr3t#x&a=1", "postgresql://u@h/db?password=***&a=1"),
    ("host=h password=s3cr3t dbname=db", "host=h password=*** dbname=db"),
    ("host=h password = s3cr3t dbname=db", "host=h password = *** dbname=db"),
    ("host=h password='s3cr3t with spaces' dbname=db", "host=h password=*** dbname=db"),
    ("host=h password='it\\'s s3cr3t' dbname=db", "host=h password=*** dbname=db"),
    ("password=s3cr3t", "password=***"),
    ("host=h password=s3cr3t&x dbname=db", "host=h password=*** dbname=db"),  # '&': plain here
    ("host=h sslpassword=s3cr3t", "host=h sslpassword=***"),
    ("postgresql+psycopg://u:s3cr3t@h/db", "postgresql+psycopg://u:***@h/db"),
    ("postgresql+asyncpg://u:s3cr3t@h/db", "postgresql+asyncpg://u:***@h/db"),
    ("cockroachdb://u:s3cr3t@h:26257/db", "cockroachdb://u:***@h:26257/db"),
    ("foo://u:s3cr3t@h", "foo://u:***@h"),
    ("postgresql://u:p@s3cr3t@h/db", "postgresql://u:***@h/db"),  # unencoded '@'
    ("postgresql://u:s3cr3t@@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:s3cr3t@[::1]:5432/db", "postgresql://u:***@[::1]:5432/db"),
    ("postgresql://u:s3cr3t@[2001:db8::1]/db", "postgresql://u:***@[2001:db8::1]/db"),
    (
        "postgresql://u:s3cr3t@h1:5432,h2:5433,[::1]:5434/db?target_session_attrs=any",
        "postgresql://u:***@h1:5432,h2:5433,[::1]:5434/db?target_session_attrs=any",
    ),
    ("postgresql://u:s3%40cr%3At@h/db", "postgresql://u:***@h/db"),  # percent-encoded
    # unencoded characters libpq takes as part of the password ('/' it cannot)
    ("postgresql://u:s3cr3t?x@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:s3cr3t#x@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:s3cr3t'x@h/db", "postgresql://u:***@h/db"),
    ('postgresql://u:s3cr3t"x@h/db', "postgresql://u:***@h/db"),
    ("postgresql://u:x/s3cr3t@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:s3cr3t/x?y@h:5432/db", "postgresql://u:***@h:5432/db"),
    # an '@' later in a URL with a port: hidden up to it, more than needed and never less
    ("postgresql://h:5432/db?application_name=a@b", "postgresql://h:***@b"),
    ("postgresql://us%40er:s3cr3t@h/db", "postgresql://us%40er:***@h/db"),
    ("postgresql://u:s3cr3t@/db?host=/var/run/pg", "postgresql://u:***@/db?host=/var/run/pg"),
    ("postgresql://:s3cr3t@h/db", "postgresql://:***@h/db"),
    # inside error text, quoted as psycopg and Python do
    (
        'missing "=" after "cockroachdb://u:s3cr3t@h/db" in connection info string',
        'missing "=" after "cockroachdb://u:***@h/db" in connection info string',
    ),
    ("url='postgresql://u:s3cr3t@h/db' failed", "url='postgresql://u:***@h/db' failed"),
    ("two: postgres://a:s3cr3t@h and postgres://b:s3cr3t@k", None),
    # nothing to hide: unchanged
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("postgresql://h/db", "postgresql://h/db"),
    ("postgresql://postgres:@/tidebase?host=/tmp", "postgresql://postgres:@/tidebase?host=/tmp"),
    ("host=h user=u dbname=db", "host=h user=u dbname=db"),
    ("a:b@c in plain text", "a:b@c in plain text"),
    ("time 12:30 @ noon", "time 12:30 @ noon"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_redact_dsn_hides_every_form_of_password(text: str, expected: str | None) -> None:
    redacted = redact_dsn(text)
    for secret in ("s3cr3t", "s3%40cr%3At", "p@s3cr3t"):
        assert secret not in redacted
    if expected is not None:
        assert redacted == expected
    assert redact_dsn(redacted) == redacted  # idempotent


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:s3cr3t@h/db",
        "postgresql://u@h/db?password=s3cr3t",
        "host=h password='s3cr3t x'",
        "postgresql://u:s3cr3t@[::1]:5432,h2/db",
    ],
)
def test_safe_url_and_client_reprs_hide_the_password(url: str) -> None:
    assert SECRET not in Settings.resolve(url).safe_url
    assert SECRET not in repr(Tidebase(url))
    assert SECRET not in repr(AsyncTidebase(url))


# Any character a generated or typed password may hold, the URL's own delimiters included.
_PASSWORDS = st.text(
    st.characters(whitelist_categories=("L", "N", "P", "S", "Zs"), max_codepoint=0x2FF),
    min_size=1,
    max_size=12,
).map(lambda tail: "Zq9" + tail)  # a prefix found nowhere else in the forms


def _forms(password: str) -> list[str]:
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    encoded = quote(password, safe="")
    forms = [
        f"postgresql://user:{password}@db.example:5432/app?sslmode=require",
        f"postgresql://user:{encoded}@db.example:5432/app",
        f"postgresql://user@db.example/app?sslmode=require&password={encoded}&x=1",
        f"host=db.example password='{escaped}' dbname=app",
    ]
    if not any(c.isspace() or c in "'\\" for c in password):
        forms.append(f"host=db.example password={password} dbname=app")
    return forms


@settings(max_examples=300, deadline=None)
@given(_PASSWORDS)
def test_no_password_shows_in_any_form_whatever_its_characters(password: str) -> None:
    """Every form, with the password raw or percent-encoded: either the client refuses the URL
    without quoting the password, or its repr and ``redact_dsn`` hide it."""
    secrets = {password, quote(password, safe="")}
    for form in _forms(password):
        try:
            shown = repr(Tidebase(form)) + redact_dsn(form) + redact_dsn(f"error: '{form}' failed")
        except ConfigurationError as exc:
            shown = str(exc)
        for secret in secrets:
            assert secret not in shown, (form, shown)


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("postgresql://u:s3cr3t x@h/db", "%20"),
        ("postgresql://u:s3cr3t/x@h/db", "%2F"),
        ("postgresql://u:s3/cr3t?x@h/db", "%2F"),
    ],
)
def test_urls_libpq_would_refuse_quoting_the_password_are_refused_first(url: str, fix: str) -> None:
    """libpq's own message would quote part of the password ("unexpected spaces found in …",
    a port read from it): the client refuses such a URL first, naming the fix."""
    with pytest.raises(ConfigurationError, match=fix) as info:
        Tidebase(url)
    assert "s3" not in str(info.value) and "cr3t" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:s3cr3t@h/db",
        "cockroachdb://u:s3cr3t@h/db",
        "postgresql://u:p@s3cr3t@h/db",
    ],
)
def test_urls_psycopg_would_misread_are_refused_without_the_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        Tidebase(url)
    assert SECRET not in str(info.value)
    assert "***" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:s3cr3t@127.0.0.1:1/db",
        "postgresql://u@127.0.0.1:1/db?password=s3cr3t",
        "postgresql://u:s3cr3t?#'x@127.0.0.1:1/db",
        "host=127.0.0.1 port=1 user=u password='s3cr3t x' dbname=db",
        "host=127.0.0.1 port=1 password=s3cr3t bogus",  # a DSN psycopg cannot parse
    ],
)
def test_errors_for_a_wrong_url_hide_the_password(url: str) -> None:
    tide = Tidebase(url)
    with pytest.raises(DatabaseUnavailable) as info:
        tide.run("wf", lambda run, input: 1, run_id="r")
    text = str(info.value) + repr(info.value)
    assert SECRET not in text
    assert "could not connect to Postgres" in text
