"""Signed webhooks: recovery (``run.resume``) and push dispatch (``run.invoke``).

Bodies are signed with HMAC-SHA256 over the raw bytes, sent as
``x-tidebase-signature: sha256=<hex>`` (the official Tidebase server's scheme), keyed by
``TIDEBASE_WEBHOOK_SECRET``. Delivery uses the standard library (urllib, in a thread) with short
timeouts, so the core needs no HTTP client. ``webhook_app`` is a plain ASGI callable (no web
framework): it verifies the signature, then re-invokes the run named by the payload.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import threading
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "SIGNATURE_HEADER",
    "deliver",
    "sign",
    "verify_webhook_signature",
    "webhook_app",
    "webhook_secret",
]

SIGNATURE_HEADER = "x-tidebase-signature"
TIMEOUT_SECONDS = 5.0

log = logging.getLogger("tidebase.webhooks")


def webhook_secret(secret: str | None = None) -> str:
    value = secret if secret is not None else os.environ.get("TIDEBASE_WEBHOOK_SECRET")
    if not value:
        raise ConfigurationError(
            "webhooks are signed with TIDEBASE_WEBHOOK_SECRET, which is not set: set it (the "
            "same value) in the environment of the workers and of the receiving app"
        )
    return value


def sign(body: bytes, secret: str) -> str:
    """The signature header's value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_webhook_signature(body: bytes, signature_header: str | None, secret: str) -> bool:
    """True when ``signature_header`` is the HMAC-SHA256 of ``body`` under ``secret``
    (timing-safe; the ``sha256=`` prefix is optional, as in the official SDK)."""
    if not signature_header or not secret:
        return False
    if isinstance(body, str):
        body = body.encode("utf-8")
    given = signature_header.strip()
    if given.startswith("sha256="):
        given = given[len("sha256=") :]
    expected = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


def deliver(url: str, payload: dict[str, Any], secret: str) -> tuple[int | None, str | None]:
    """POST ``payload`` signed; ``(status code, error)`` — never raises for delivery failures."""
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return post(url, body, secret=secret, user_agent="tidebase-python")


def post(
    url: str, body: bytes, *, secret: str | None, user_agent: str
) -> tuple[int | None, str | None]:
    """POST a JSON ``body``, signed when there is a ``secret``; ``(status code, error)``."""
    headers = {"content-type": "application/json", "user-agent": user_agent}
    if secret:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return None, f"{type(exc).__name__}: {exc}"[:1000]
    return status, None if 200 <= status < 300 else f"HTTP {status}"


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def webhook_app(client: Any, *, secret: str | None = None) -> Callable[..., Awaitable[None]]:
    """An ASGI app that accepts signed ``run.resume`` / ``run.invoke`` webhooks and re-invokes
    the run they name with the workflow registered under its name (``@tide.workflow``).

    Unsigned or tampered requests get 401 and change nothing. A valid one gets 202 at once; the
    run executes in the background (a task for ``AsyncTidebase``, a thread for ``Tidebase``).
    """
    from .registry import lookup

    key = webhook_secret(secret)
    pending: set[Any] = set()

    async def respond(send: Send, status: int, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope.get("method") != "POST":
            await respond(send, 405, {"error": "POST a signed Tidebase webhook"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not verify_webhook_signature(body, headers.get(SIGNATURE_HEADER), key):
            await respond(send, 401, {"error": "invalid or missing x-tidebase-signature"})
            return
        try:
            payload = json.loads(body)
            # The protocol's camelCase fields (``run.resume``/``run.invoke`` as the official
            # server sends them); snake_case from deliveries made before this release.
            run_id = payload["runId"] if "runId" in payload else payload["run_id"]
            name = (
                payload["workflowName"] if "workflowName" in payload else payload["workflow_name"]
            )
            entry = lookup(name)
        except (ValueError, KeyError, TypeError) as exc:
            await respond(send, 400, {"error": str(exc)})
            return
        await respond(send, 202, {"accepted": run_id})
        if asyncio.iscoroutinefunction(client.run):
            task = asyncio.ensure_future(_resume_async(client, name, entry, run_id))
            pending.add(task)
            task.add_done_callback(pending.discard)
        else:
            threading.Thread(
                target=_resume_sync, args=(client, name, entry, run_id), daemon=True
            ).start()

    return app


async def _resume_async(client: Any, name: str, entry: Any, run_id: str) -> None:
    try:
        await client.run(name, entry.invoke, run_id=run_id, output_type=entry.output_type)
    except Exception as exc:  # the run records its own failure; this is the receiver's log
        log.warning("webhook re-invocation of run %s ended with %r", run_id, exc)


def _resume_sync(client: Any, name: str, entry: Any, run_id: str) -> None:
    try:
        client.run(name, entry.invoke, run_id=run_id, output_type=entry.output_type)
    except Exception as exc:
        log.warning("webhook re-invocation of run %s ended with %r", run_id, exc)
