"""A recovery webhook: when a run's process dies, Tidebase calls your app, which resumes it.

    python examples/recovery_webhook.py

1. A receiver (your app) listens on 127.0.0.1 with ``tide.webhook_app()``, a plain ASGI app
   served here by a tiny stdlib bridge (use uvicorn or any ASGI server in production).
2. A run with ``recovery_webhook=<receiver url>`` starts in a child process, which is killed
   (SIGKILL) after its first step.
3. The reconciler sees the dead owner, POSTs a signed ``run.resume`` (x-tidebase-signature,
   HMAC-SHA256 with TIDEBASE_WEBHOOK_SECRET), the receiver verifies it and resumes the run:
   the finished step is replayed, not executed again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import tidebase
from tidebase import RunContext

os.environ.setdefault("TIDEBASE_WEBHOOK_SECRET", "example-secret")  # the same on both sides
tide = tidebase.Tidebase()


@tide.workflow("publish")
def publish(run: RunContext, input: dict[str, Any]) -> str:
    draft = run.step("draft", lambda: print("  executing draft", flush=True) or "a draft")
    if os.environ.get("DIE_AFTER_DRAFT"):
        os.kill(os.getpid(), signal.SIGKILL)
    return run.step("send", lambda: f"sent {draft} to {input['to']}")


def serve(app: Any) -> str:
    """Bridge stdlib HTTP to the ASGI app (enough for this example)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            sent: list[dict[str, Any]] = []

            async def call() -> None:
                async def receive() -> dict[str, Any]:
                    return {"type": "http.request", "body": body, "more_body": False}

                async def send(message: dict[str, Any]) -> None:
                    sent.append(message)

                headers = [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
                await app({"type": "http", "method": "POST", "headers": headers}, receive, send)
                await asyncio.sleep(0.5)  # let the resumed run start before the loop closes

            asyncio.run(call())
            self.send_response(sent[0]["status"])
            self.end_headers()
            self.wfile.write(sent[1]["body"])

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/tidebase"


def main() -> None:
    if len(sys.argv) > 1:  # the child process: run until killed
        tide.run("publish", run_id=sys.argv[1])
        return
    url = serve(tide.webhook_app())
    run_id = f"publish-{uuid.uuid4().hex[:8]}"
    tide.runs.create("publish", run_id=run_id, input={"to": "ana"}, recovery_webhook=url)
    print(f"run {run_id}: starting it in a process that dies after its first step")
    subprocess.run(
        [sys.executable, __file__, run_id], env={**os.environ, "DIE_AFTER_DRAFT": "1"}, check=False
    )
    print(f"process died; status {tide.runs.get(run_id).status}; the reconciler calls {url}")
    from tidebase_core._sync.reconciler import Reconciler

    while tide.runs.get(run_id).status != "completed":
        Reconciler(tide).tick()  # every worker ticks this on its own; here, by hand
        time.sleep(0.2)
    print("webhook attempts:", [(a.kind, a.status_code) for a in tide.runs.webhooks(run_id)])
    print("result:", tide.runs.get(run_id).result)
    tide.close()


if __name__ == "__main__":
    main()
