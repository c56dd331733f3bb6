"""Generate the sync engine (``tidebase_core/_sync/``) from the async one (``_async/``).

One behaviour, two faces: the async modules are the source, as in psycopg. ``unasync`` rewrites
tokens (``async def`` → ``def``, ``await x`` → ``x``, ``AsyncStore`` → ``Store``, ``_acompat`` →
``_compat`` …); the concurrency primitives that differ live in ``_acompat``/``_compat``.

    python tools/generate_sync.py           # rewrite tidebase_core/_sync/
    python tools/generate_sync.py --check   # exit 1 if _sync/ is stale (run by the test suite)
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import unasync

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tidebase_core" / "_async"
TARGET = ROOT / "tidebase_core" / "_sync"

REPLACEMENTS = {
    "AsyncTidebase": "Tidebase",
    "AsyncRunContext": "RunContext",
    "AsyncRuns": "Runs",
    "AsyncStore": "Store",
    "AsyncStoreConnection": "StoreConnection",
    "AsyncConnection": "Connection",
    "AsyncConnectionPool": "ConnectionPool",
    "AsyncCursor": "Cursor",
    "AsyncLiveState": "LiveState",
    "AsyncRunEvents": "RunEvents",
    "AsyncEvents": "Events",
    "AsyncGates": "Gates",
    "AsyncRunUsage": "RunUsage",
    "AsyncUsage": "Usage",
    "AsyncRunListener": "RunListener",
    "AsyncQueueStore": "QueueStore",
    "AsyncQueues": "Queues",
    "AsyncSchedules": "Schedules",
    "AsyncWorker": "Worker",
    "AsyncReconciler": "Reconciler",
    "AsyncRunSession": "RunSession",
    "AsyncRunGates": "RunGates",
    "AsyncSnapshots": "Snapshots",
    "AsyncExitStack": "ExitStack",
    "enter_async_context": "enter_context",
    "aclose": "close",
    "_acompat": "_compat",
}

_SOURCE_NOTE = re.compile(
    r"This is the async source; ``tidebase_core/_sync/(\w+\.py)`` is generated from it\."
)


def render() -> dict[str, str]:
    """The generated text of every module, by file name."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "_async"
        shutil.copytree(SOURCE, src, ignore=shutil.ignore_patterns("__pycache__"))
        files = sorted(str(p) for p in src.glob("*.py"))
        rule = unasync.Rule("/_async/", "/_sync/", additional_replacements=REPLACEMENTS)
        unasync.unasync_files(files, rules=[rule])
        out = Path(tmp) / "_sync"
        texts = {}
        for path in sorted(out.glob("*.py")):
            text = _SOURCE_NOTE.sub(
                lambda m: (
                    f"Generated from ``tidebase_core/_async/{m[1]}`` by ``tools/generate_sync.py``:"
                    " edit that file, not this one."
                ),
                path.read_text(),
            )
            if path.name == "__init__.py":
                text = text.replace("async engine", "sync engine (generated)")
            path.write_text(text)
        _format(out)
        for path in sorted(out.glob("*.py")):
            texts[path.name] = path.read_text()
        return texts


def _format(folder: Path) -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    try:
        subprocess.run(
            [ruff, "format", "--quiet", "--line-length", "100", str(folder)],
            check=True,
            cwd=ROOT,
        )
        subprocess.run(
            [ruff, "check", "--quiet", "--fix", "--select", "I,F401", "--exit-zero", str(folder)],
            check=True,
            cwd=ROOT,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(f"generate_sync: ruff is needed to format the output ({exc})") from exc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if _sync/ is out of date")
    args = parser.parse_args()
    texts = render()
    stale = []
    for name, text in texts.items():
        target = TARGET / name
        current = target.read_text() if target.exists() else ""
        if current != text:
            stale.append(name)
            if args.check:
                sys.stdout.writelines(
                    difflib.unified_diff(
                        current.splitlines(True), text.splitlines(True), str(target), "generated"
                    )
                )
            else:
                target.write_text(text)
    extra = {p.name for p in TARGET.glob("*.py")} - set(texts)
    if args.check:
        if stale or extra:
            print(
                f"\n_sync/ is stale ({', '.join(sorted(stale + list(extra)))}): "
                "run python tools/generate_sync.py"
            )
            return 1
        return 0
    for name in extra:
        (TARGET / name).unlink()
    print(
        f"generated {len(texts)} modules into {TARGET.relative_to(ROOT)}"
        + (f" ({', '.join(stale)} changed)" if stale else " (no changes)")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
