"""Registry benchmark: the real REQ/REP path, durable, against the physical floor it sits on.

Run: ``.venv/bin/python tests/bench/bench_registry.py [--quick]``

Measures, in one run and on one ~1 KiB object value:

* floors — a raw durable LMDB commit of the value in-process (p50, commits/s); a bare
  ZeroMQ ipc REQ/REP round trip to another process (p50); decoding 10,000 values
  straight from LMDB in-process;
* creates/s and updates/s from 1 client and from 4 client processes;
* create acknowledged → event received by a subscriber in another process (p50/p99) at
  ~500 writes/s (and request sent → event received);
* LIST of 10,000 objects; registry RSS with 10,000 objects.

Every figure is printed with its ratio to its floor and the target it is held to.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import lmdb  # noqa: E402
import msgpack  # noqa: E402
import psutil  # noqa: E402
import zmq  # noqa: E402

from ecsm_actors.protocol import Event  # noqa: E402
from ecsm_actors.registry.client import RegistryClient  # noqa: E402

PY = sys.executable


def value(name: str, replicas: int = 2) -> dict[str, Any]:
    """An ECSMService of about 1 KiB on the wire."""
    return {
        "apiVersion": "ecsm.sh/v1",
        "kind": "ECSMService",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "web"}},
        "spec": {
            "deploymentStrategy": {"type": "Dynamic", "replicas": replicas,
                                   "nodePool": ["node-1", "node-2", "node-3"]},
            "template": {
                "image": "app@1.0#sylixos",
                "command": ["/apps/app/app", "--port", "8080", "--verbose"],
                "env": [{"name": f"VAR_{i}", "value": f"value-{i}-" + "x" * 24}
                        for i in range(8)],
                "resources": {"limits": {"memory": "256Mi", "disk": "1Gi"}},
            },
            "rollout": {"maxSurge": 1, "maxUnavailable": 0},
        },
    }


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


RESULTS: list[tuple[str, str, str, str]] = []


def report(name: str, figure: str, ratio: str = "", target: str = "") -> None:
    RESULTS.append((name, figure, ratio, target))
    print(f"  {name:<44} {figure:>14}  {ratio:<28} {target}", flush=True)


# -- floors ---------------------------------------------------------------------------


def raw_commit_floor(tmp: Path, n: int, body: bytes) -> tuple[float, float]:
    env = lmdb.open(str(tmp / "raw"), map_size=1 << 30, max_dbs=3)
    db = env.open_db(b"objects")
    times = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        with env.begin(write=True, db=db) as txn:
            txn.put(f"ECSMService/default/raw-{i}".encode(), body)
        times.append(time.perf_counter() - t)
    rate = n / (time.perf_counter() - start)
    env.close()
    return statistics.median(times), rate


def decode_floor(tmp: Path, count: int, body: bytes) -> float:
    env = lmdb.open(str(tmp / "decode"), map_size=1 << 30, max_dbs=3)
    db = env.open_db(b"objects")
    with env.begin(write=True, db=db) as txn:
        for i in range(count):
            txn.put(f"ECSMService/default/o{i:05}".encode(), body)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        gc.disable()
        with env.begin(db=db) as txn:
            items = [msgpack.unpackb(v, raw=False) for _, v in txn.cursor()]
        gc.enable()
        best = min(best, time.perf_counter() - t)
        assert len(items) == count
    env.close()
    return best


ECHO = """
import sys, zmq
ctx = zmq.Context(); s = ctx.socket(zmq.REP); s.bind(sys.argv[1]); print("up", flush=True)
while True:
    m = s.recv()
    if m == b"quit":
        s.send(b""); break
    s.send(m)
"""


def ipc_floor(tmp: Path, n: int, body: bytes) -> float:
    endpoint = f"ipc://{tmp}/echo.sock"
    proc = subprocess.Popen([PY, "-c", ECHO, endpoint], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"up"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.REQ)
    sock.connect(endpoint)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        sock.send(body)
        sock.recv()
        times.append(time.perf_counter() - t)
    sock.send(b"quit")
    sock.recv()
    sock.close()
    ctx.term()
    proc.wait(timeout=5)
    return statistics.median(times)


# -- the registry ---------------------------------------------------------------------

WORKER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from tests.bench.bench_registry import value
from ecsm_actors.registry.client import RegistryClient
endpoint, prefix, n, go, op = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
import os
c = RegistryClient(endpoint, timeout=30)
c.ping()
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
t0 = time.monotonic()
for i in range(n):
    if op == "create":
        c.create(value(f"{prefix}-{i}"))
    else:
        c.update(value(f"{prefix}-{i}", replicas=3))
t1 = time.monotonic()
print(json.dumps({"t0": t0, "t1": t1}), flush=True)
"""


def clients_rate(endpoint: str, tmp: Path, clients: int, n: int, op: str, tag: str) -> float:
    go = tmp / f"go-{tag}-{op}"
    procs = [subprocess.Popen([PY, "-c", WORKER, str(ROOT), endpoint, f"{tag}{k}", str(n),
                               str(go), op], stdout=subprocess.PIPE, text=True)
             for k in range(clients)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    spans = []
    for p in procs:
        assert p.stdout is not None
        spans.append(json.loads(p.stdout.readline()))
        p.wait(timeout=60)
    wall = max(s["t1"] for s in spans) - min(s["t0"] for s in spans)
    return clients * n / wall


SUBSCRIBER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from ecsm_actors.protocol import Event
from ecsm_actors.registry.client import Subscriber
sub = Subscriber(sys.argv[2], kinds=["ECSMService"])
print("ready", flush=True)
last, got = int(sys.argv[3]), {}
while True:
    m = sub.recv(10.0)
    if m is None:
        break
    if isinstance(m, Event):
        got[m.seq] = time.monotonic()
        if m.seq >= last:
            break
print(json.dumps(got), flush=True)
"""


def event_latency(client: RegistryClient, events_endpoint: str, n: int,
                  rate: float) -> tuple[list[float], list[float]]:
    start_rv = client.ping()["resourceVersion"]
    last = start_rv + n
    sub = subprocess.Popen([PY, "-c", SUBSCRIBER, str(ROOT), events_endpoint, str(last)],
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None and sub.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # let the SUB connection settle (slow joiner)
    sent, acked = {}, {}
    period = 1.0 / rate
    next_at = time.monotonic()
    for i in range(n):
        while time.monotonic() < next_at:
            pass
        next_at += period
        t = time.monotonic()
        obj = client.create(value(f"lat-{i}"))
        rv = obj["metadata"]["resourceVersion"]
        sent[rv], acked[rv] = t, time.monotonic()
    received = {int(k): v for k, v in json.loads(sub.stdout.readline()).items()}
    sub.wait(timeout=10)
    missing = [rv for rv in acked if rv not in received]
    assert not missing, f"{len(missing)} events not received"
    return ([received[rv] - acked[rv] for rv in acked],
            [received[rv] - sent[rv] for rv in acked])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    args = parser.parse_args()
    scale = 0.2 if args.quick else 1.0
    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-", dir="/tmp"))
    tmp.chmod(0o700)
    body = msgpack.packb(value("raw"), use_bin_type=True)
    print(f"registry benchmark (value {len(body)} B on the wire; durable LMDB; "
          f"{os.cpu_count()} cpus)\n")
    print("floors")
    commit_p50, commit_rate = raw_commit_floor(tmp, int(3000 * scale), body)
    report("raw durable LMDB commit p50", ms(commit_p50))
    report("raw durable LMDB commits/s", f"{commit_rate:,.0f}/s")
    rtt = ipc_floor(tmp, int(3000 * scale), body)
    report("bare zmq ipc round trip p50", ms(rtt))
    decode_10k = decode_floor(tmp, 10_000, body)
    report("in-process read+decode of 10,000 values", ms(decode_10k))

    run_dir = tmp / "run"
    run_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update(ECSM_ACTORS_RUN_DIR=str(run_dir), ECSM_ACTORS_LOG_LEVEL="WARNING")
    registry = subprocess.Popen([PY, "-m", "ecsm_actors", "registry"], env=env, cwd=ROOT)
    try:
        endpoint = f"ipc://{run_dir}/registry.sock"
        events_endpoint = f"ipc://{run_dir}/events.sock"
        client = RegistryClient(endpoint, timeout=30)
        client.ping()
        rss_empty = psutil.Process(registry.pid).memory_info().rss
        print("\nthrough the registry (REQ/REP, durable, group commit)")
        n1 = int(2500 * scale)
        t = time.perf_counter()
        lat = []
        for i in range(n1):
            t1 = time.perf_counter()
            client.create(value(f"one-{i}"))
            lat.append(time.perf_counter() - t1)
        create1 = n1 / (time.perf_counter() - t)
        report("1 client creates/s", f"{create1:,.0f}/s", f"{create1 / commit_rate:.2f}x raw",
               "target >= 0.55x raw")
        report("1 client create p50", ms(statistics.median(lat)),
               f"{statistics.median(lat) / commit_p50:.2f}x raw commit p50")
        t = time.perf_counter()
        for i in range(n1):
            client.update(value(f"one-{i}", replicas=3))
        update1 = n1 / (time.perf_counter() - t)
        report("1 client updates/s", f"{update1:,.0f}/s", f"{update1 / commit_rate:.2f}x raw",
               "target >= 0.55x raw")
        n4 = int(1500 * scale)
        create4 = clients_rate(endpoint, tmp, 4, n4, "create", "four")
        report("4 clients creates/s", f"{create4:,.0f}/s", f"{create4 / commit_rate:.2f}x raw",
               "target >= 2.2x raw")
        update4 = clients_rate(endpoint, tmp, 4, n4, "update", "four")
        report("4 clients updates/s", f"{update4:,.0f}/s", f"{update4 / commit_rate:.2f}x raw",
               "target >= 2.2x raw")

        n_lat = int(1500 * scale)
        to_event, sent_to_event = event_latency(client, events_endpoint, n_lat, 500.0)
        report("create ack -> event p50 @500/s", ms(pct(to_event, 50)),
               f"{pct(to_event, 50) / rtt:.2f}x ipc rtt")
        report("create ack -> event p99 @500/s", ms(pct(to_event, 99)),
               f"{pct(to_event, 99) / rtt:.2f}x ipc rtt", "target <= 1 ms")
        report("create sent -> event p50 @500/s", ms(pct(sent_to_event, 50)),
               f"{pct(sent_to_event, 50) / commit_p50:.2f}x raw commit p50")
        report("create sent -> event p99 @500/s", ms(pct(sent_to_event, 99)),
               f"{pct(sent_to_event, 99) / commit_p50:.2f}x raw commit p50")

        have = len(client.list("ECSMService").items)
        for i in range(max(0, 10_000 - have)):
            client.create(value(f"fill-{i}"))
        listed = []
        for _ in range(5):
            t = time.perf_counter()
            result = client.list("ECSMService")
            listed.append(time.perf_counter() - t)
        count = len(result.items)
        del result
        best = min(listed)
        report(f"LIST of {count:,} objects (best of 5)", ms(best),
               f"{best / decode_10k:.2f}x in-process decode")
        rss = psutil.Process(registry.pid).memory_info().rss
        report(f"registry RSS with {count:,} objects", f"{rss / 2**20:.1f} MiB",
               f"{rss / rss_empty:.2f}x empty registry ({rss_empty / 2**20:.1f} MiB)",
               "target <= 60 MiB")
        client.close()
    finally:
        registry.terminate()
        registry.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    _ = Event
    return 0


if __name__ == "__main__":
    sys.exit(main())
