"""One library's measurements, in a process of its own (its peak RSS is its own).

python -m benchmarks.child run <library> <url>           -> one JSON line of figures
python -m benchmarks.child crash <library> <url> <n> <run_id>   (dies after n steps)
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
from pathlib import Path

MODULES = {
    "floor": "benchmarks.floor",
    "tidebase": "benchmarks.tidebase_workloads",
    "dbos": "benchmarks.dbos_workloads",
}


def main() -> None:
    action, library, url = sys.argv[1:4]
    module = importlib.import_module(MODULES[library])
    if action == "crash":
        module.crash(url, int(sys.argv[4]), sys.argv[5])
        raise SystemExit("the crash workload returned instead of dying")
    figures = module.run(url, {})
    figures["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(figures), flush=True)


def _peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: on Linux that also counts the
    memory of the process this one was forked from, before exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
