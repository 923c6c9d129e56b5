"""A child that describes the process it finds itself in, for the zygote tests.

Run as ``python forked_probe.py`` by a supervisor (forked from its zygote). Prints one JSON
line to its log — pid, parent, a draw of ``random``, its open fds, blocked signals, the
SIGINT/SIGTERM handlers, argv and an environment variable — then waits for SIGTERM.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys

from ecsm_actors.lifecycle import die_with_parent


def open_fds() -> list[int]:
    listed = [int(fd) for fd in os.listdir("/proc/self/fd")]
    # the directory listed was one of them: it is closed by now
    return sorted(fd for fd in listed if os.path.exists(f"/proc/self/fd/{fd}"))


def handler_name(signum: int) -> str:
    handler = signal.getsignal(signum)
    return getattr(handler, "__name__", None) or str(handler)


def main() -> int:
    die_with_parent()
    print(json.dumps({
        "pid": os.getpid(), "ppid": os.getppid(), "random": random.random(),
        "fds": open_fds(), "blocked": sorted(int(s) for s in signal.pthread_sigmask(
            signal.SIG_BLOCK, [])),
        "sigint": handler_name(signal.SIGINT), "sigterm": handler_name(signal.SIGTERM),
        "argv": sys.argv, "name": __name__, "probe": os.environ.get("PROBE_NAME"),
    }), flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
