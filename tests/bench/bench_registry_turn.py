"""Where the registry's CPU goes in one turn of its loop, per request: timed inside the registry.

Run: ``.venv/bin/python tests/bench/bench_registry_turn.py [--op update|create|get]
[--clients N] [--seconds S] [--subscribers M] [--no-fsync]``

A real registry (its own process, ipc://) whose loop and store methods are wrapped with
thread-CPU counters (``time.thread_time_ns``, about 1 µs of overhead each), driven by N
client processes (``RegistryClient``, every write with its ``requestId``) for S seconds.
Printed: the CPU per call of each part (receiving, request decode, staging = validation,
apply, the commit around them, replies, events, poll), the batch sizes of the group
commits, and requests/s. ``--subscribers M``: M processes read every event on the local
event stream meanwhile (``HeadSubscriber``, as informers do; their CPU an event printed).
With ``--no-fsync`` the store's ``fdatasync`` does nothing — a
bench-only mode that leaves the disk out, to see the CPU of the rest of the path; the
writes are then NOT durable (never anything but a benchmark).

The parts nest: ``serve_batch`` holds decode, ``_write`` (which holds ``execute``: stage,
``_commit`` with ``_apply``), ``_send_on`` (a reply sent), ``_publish`` (an event
published); ``_recv`` and ``poll`` are apart.
Figures on a loaded machine are about twice the quiet ones; compare parts within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ecsm_actors.protocol import Op  # noqa: E402
from ecsm_actors.registry.client import RegistryClient  # noqa: E402
from tests.bench.bench_registry import PY  # noqa: E402

#: The registry with its parts timed; its counters are written to argv[1] at exit.
REGISTRY = """
import json, os, sys, time
sys.path.insert(0, sys.argv[2])
if sys.argv[3] == "no-fsync":
    os.fdatasync = lambda fd: None  # bench only: nothing is durable
import zmq
from ecsm_actors.registry import server as S
from ecsm_actors.store import lmdb_store as L
parts, sizes = {}, {}
def timed(owner, name):
    f, clock = getattr(owner, name), time.thread_time_ns
    def wrapper(*a, **k):
        t = clock()
        try:
            return f(*a, **k)
        finally:
            e = parts.setdefault(name, [0, 0]); e[0] += clock() - t; e[1] += 1
    setattr(owner, name, wrapper)
for name in ("serve_batch", "_write", "_recv", "_send_on", "_publish"):
    timed(S.RegistryServer, name)
for name in ("execute", "_commit", "_apply"):
    timed(L.Store, name)
timed(S.protocol, "decode_request")
timed(L, "stage")
timed(zmq.Poller, "poll")
write = S.RegistryServer._write
def counted(self, writes):
    sizes[len(writes)] = sizes.get(len(writes), 0) + 1
    return write(self, writes)
S.RegistryServer._write = counted
try:
    S.main([])
finally:
    with open(sys.argv[1], "w") as out:
        json.dump({"parts": parts, "sizes": sizes, "cpu": time.process_time()}, out)
"""

#: One client process: the op for the given seconds; prints how many it made.
CLIENT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from ecsm_actors.registry.client import RegistryClient
from tests.bench.bench_registry import value
endpoint, op, name, seconds = sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
c = RegistryClient(endpoint, timeout=60)
obj = c.create(value(name, namespace="turn"))
n, end = 0, time.monotonic() + seconds
while time.monotonic() < end:
    if op == "create":
        c.create(value(f"{name}-{n}", namespace="turn"))
    elif op == "update":
        spec = obj["spec"]["deploymentStrategy"]
        spec["replicas"] = 2 + (obj["metadata"]["resourceVersion"] + 1) % 3
        obj = c.update(obj)
    else:
        c.get("ECSMService", "turn", name)
    n += 1
print(n)
"""

#: One subscriber process on the event stream: ready once a heartbeat came, then reads for
#: the given seconds; prints its events and its CPU.
SUBSCRIBER = """
import sys, time
sys.path.insert(0, sys.argv[1])
from ecsm_actors.protocol import Heartbeat
from ecsm_actors.registry.subscriber import HeadSubscriber
sub = HeadSubscriber(sys.argv[2])
while not isinstance(sub.recv(30), Heartbeat):
    pass
print("ready", flush=True)
n, end = 0, time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    if not isinstance(sub.recv(0.2), (Heartbeat, type(None))):
        n += 1
print(n, time.process_time())
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--op", choices=("update", "create", "get"), default="update")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--zmq", action="store_true",
                        help="clients on the ZeroMQ endpoint (ipc://), not the local stream")
    parser.add_argument("--subscribers", type=int, default=0,
                        help="processes reading every event on the local event stream")
    parser.add_argument("--no-fsync", action="store_true",
                        help="the store's fdatasync does nothing (bench only: not durable)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-turn-", dir="/tmp"))
    tmp.chmod(0o700)
    run_dir = tmp / "run"
    run_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update(ECSM_ACTORS_RUN_DIR=str(run_dir), ECSM_ACTORS_LOG_LEVEL="WARNING")
    counters = tmp / "counters.json"
    registry = subprocess.Popen(
        [PY, "-c", REGISTRY, str(counters), str(ROOT),
         "no-fsync" if args.no_fsync else "fsync"], env=env, cwd=ROOT)
    endpoint = (f"ipc://{run_dir}/registry.sock" if args.zmq
                else f"unix://{run_dir}/registry.stream")
    try:
        RegistryClient(endpoint, timeout=30).request(Op.PING)
        subscribers = [subprocess.Popen([PY, "-c", SUBSCRIBER, str(ROOT),
                                         f"unix://{run_dir}/events.stream",
                                         str(args.seconds + 2)], stdout=subprocess.PIPE,
                                        text=True, cwd=ROOT)
                       for _ in range(args.subscribers)]
        for sub in subscribers:
            assert sub.stdout is not None and sub.stdout.readline().strip() == "ready"
        clients = [subprocess.Popen([PY, "-c", CLIENT, str(ROOT), endpoint, args.op, f"c{i}",
                                     str(args.seconds)], stdout=subprocess.PIPE, cwd=ROOT)
                   for i in range(args.clients)]
        calls = sum(int(c.communicate(timeout=args.seconds + 60)[0]) for c in clients)
        read = [sub.communicate(timeout=60)[0].split() for sub in subscribers]
    finally:
        registry.terminate()
        registry.wait(timeout=30)
        figures = json.loads(counters.read_text()) if counters.exists() else None
        shutil.rmtree(tmp, ignore_errors=True)
    if figures is None:
        print("the registry wrote no counters")
        return 1
    print(f"{args.op} x {args.clients} client(s), {args.seconds:.0f} s, "
          f"fsync {'off (bench only)' if args.no_fsync else 'on'}, load "
          f"{os.getloadavg()[0]:.2f}: {calls / args.seconds:,.0f} requests/s, registry "
          f"process CPU {figures['cpu'] / max(calls, 1) * 1e6:.0f} us a request")
    for events, cpu in read:
        per = float(cpu) / max(int(events), 1) * 1e6
        print(f"subscriber: {int(events):,} events, CPU {per:.0f} us an event")
    print("thread CPU per call, us:")
    for name, (ns, n) in sorted(figures["parts"].items(), key=lambda kv: -kv[1][0]):
        print(f"  {name:16} {ns / n / 1e3:8.1f}  ({n:,} calls)")
    sizes = {int(k): v for k, v in figures["sizes"].items()}
    if sizes:
        writes = sum(k * v for k, v in sizes.items())
        print(f"group commits: {sum(sizes.values()):,}, {writes / sum(sizes.values()):.2f} "
              f"writes each; sizes {dict(sorted(sizes.items()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
