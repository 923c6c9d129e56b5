"""A configurable stand-in child for supervisor tests: crashes, hangs, hogs, reports.

Run as ``python worker.py --name NAME [options]`` by a supervisor given a child table.
Like a real child it calls ``die_with_parent()`` first and PUSHes liveness reports to the
supervisor's heartbeat endpoint (from ``ECSM_ACTORS_SUPERVISOR_HEARTBEAT_ENDPOINT`` /
``ECSM_ACTORS_RUN_DIR``); SIGTERM makes it exit 0 unless ``--ignore-term``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from ecsm_actors.config import load_config
from ecsm_actors.lifecycle import StopFlag, die_with_parent


def main() -> int:
    die_with_parent()
    p = argparse.ArgumentParser()
    p.add_argument("--name", required=True)
    p.add_argument("--beat", type=float, default=0.0, help="report period; 0 = silent")
    p.add_argument("--synced-after", type=float, default=0.0)
    p.add_argument("--exit-after", type=float, default=-1.0)
    p.add_argument("--exit-code", type=int, default=1)
    p.add_argument("--ignore-term", action="store_true")
    p.add_argument("--inflight-age", type=float, default=0.0)
    p.add_argument("--alloc-mib", type=int, default=0)
    args = p.parse_args()

    stop = StopFlag().install()
    if args.ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    hog = bytearray(args.alloc_mib << 20)
    for i in range(0, len(hog), 4096):
        hog[i] = 1  # touch every page: RSS, not just virtual size
    started = time.monotonic()
    reporter = None
    if args.beat > 0:
        import zmq

        from ecsm_actors.liveness import LivenessReporter

        cfg = load_config()

        def report() -> dict[str, object]:
            synced = time.monotonic() - started >= args.synced_after
            return {"queue_depth": 3, "oldest_inflight_age": args.inflight_age,
                    "stats": {"synced": synced, "pid": os.getpid()}}

        reporter = LivenessReporter(zmq.Context.instance(), cfg.heartbeat_endpoint,
                                    args.name, args.beat, report)
        reporter.beat()
        reporter.start()
        if args.synced_after > 0:
            if stop.wait(args.synced_after):
                return 0
            reporter.beat()
    print(f"{args.name}: pid {os.getpid()} up", flush=True)
    timeout = None if args.exit_after < 0 else max(0.0, args.exit_after)
    if stop.wait(timeout):
        print(f"{args.name}: stopping", flush=True)
        return 0
    print(f"{args.name}: exiting with {args.exit_code}", flush=True)
    return args.exit_code


if __name__ == "__main__":
    sys.exit(main())
