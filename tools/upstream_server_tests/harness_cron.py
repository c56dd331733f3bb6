"""Our cron parser for the harness's stand-in of upstream's ``../src/cron`` (shim/cron.ts):
``python harness_cron.py parse EXPR`` checks an expression, ``… next EXPR ISO`` prints the next
fire time after ISO (UTC). A bad expression exits 1 with our message on stderr."""

from __future__ import annotations

import sys
from datetime import datetime

from tidebase_core.queue_models import check_cron, next_fire_time


def main() -> int:
    command, cron, *rest = sys.argv[1:]
    try:
        check_cron(cron)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 1
    if command == "next":
        fire = next_fire_time(cron, datetime.fromisoformat(rest[0].replace("Z", "+00:00")))
        print(fire.isoformat())
    return 0


if __name__ == "__main__":
    sys.exit(main())
