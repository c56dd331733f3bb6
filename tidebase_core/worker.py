"""``tidebase worker module:tide --queue q --concurrency N``: a queue worker process.

The CLI package calls ``main(argv)``; ``python -m tidebase_core.worker module:tide ...`` works
too. The module is imported (its ``@tide.workflow(...)`` decorators register the workflows) and
``tide.work`` runs until SIGTERM or SIGINT, which drain: every slot finishes the run it holds
(or gives it back) and claims nothing more.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from ._async.client import AsyncTidebase
from ._sync.client import Tidebase

__all__ = ["load_client", "main"]

log = logging.getLogger("tidebase.worker")


def load_client(target: str) -> Tidebase | AsyncTidebase:
    """``"package.module:tide"`` → that client (``:tide`` is the default attribute)."""
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise SystemExit(f"worker target {target!r} must look like 'myapp.workflows:tide'")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m`: the working directory's modules import
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"cannot import {module_name!r} for the worker: {exc}") from exc
    attr = attr or "tide"
    client = getattr(module, attr, None)
    if not isinstance(client, Tidebase | AsyncTidebase):
        raise SystemExit(
            f"{module_name}:{attr} is {type(client).__name__}, not a Tidebase client; point the "
            "worker at the module attribute holding Tidebase() or AsyncTidebase()"
        )
    return client


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tidebase worker",
        description="Claim and execute queued runs with the workflows a module registers.",
    )
    parser.add_argument("target", help="module:attribute of the client, e.g. myapp.jobs:tide")
    parser.add_argument(
        "--queue",
        "-q",
        action="append",
        dest="queues",
        help="a queue to work (repeat for several; default: default)",
    )
    parser.add_argument("--concurrency", "-c", type=int, default=1, help="runs at once")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between empty polls")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    client = load_client(args.target)
    queues = args.queues or ["default"]
    if isinstance(client, AsyncTidebase):
        asyncio.run(_work_async(client, queues, args.concurrency, args.poll))
        return 0
    stop = threading.Event()

    def drain(signum: int, _frame: Any) -> None:
        log.info("%s: draining (finishing the runs in hand)", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, drain)
    signal.signal(signal.SIGINT, drain)
    try:
        client.work(queues, concurrency=args.concurrency, stop=stop, poll_s=args.poll)
    finally:
        client.close()
    return 0


async def _work_async(client: AsyncTidebase, queues: list[str], n: int, poll: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await client.work(queues, concurrency=n, stop=stop, poll_s=poll)
    finally:
        await client.close()


if __name__ == "__main__":
    raise SystemExit(main())
