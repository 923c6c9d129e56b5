"""Benchmark of the controller runtime; prints its figures (not part of the test suite).

    .venv/bin/python tests/bench/bench_runtime.py [--quick]

1. Registry commit → reconcile start, p50/p99, at ~500 writes/s: a real registry, the
   ``noop`` controller process (status writes off) and paced writers; each write goes to
   a key not written for a second or more, so it gets its own reconcile. "Commit" is
   when the event reached an independent probe subscriber process (the commit becoming
   visible elsewhere: the physical floor); the time from the write's send is printed as
   an upper bound, and the durable write's own latency for scale. Target p99 < 3 ms.
2. Reconciles/s with 1 and 4 workers: an in-process Controller on a real registry holding
   N objects drains its initial list, with a reconciler that does nothing and one that
   GETs the object (the cheapest real reconcile).
3. Informer memory with 100,000 objects (tracemalloc): the version cache (key →
   resourceVersion) against a full object cache of the same decoded objects. Target
   ≥ 10× smaller and ≤ 20 MiB.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402

from ecsm_actors import api  # noqa: E402
from ecsm_actors.config import Config, ControllerSettings, RunSettings  # noqa: E402
from ecsm_actors.informer import Informer  # noqa: E402
from ecsm_actors.runtime import Controller, ControllerSpec, ReconcileContext, Result  # noqa: E402
from tests import noop_harness as h  # noqa: E402
from tests.helpers import Processes, wait_until  # noqa: E402
from tests.registry_samples import service, with_changes  # noqa: E402

MiB = 1 << 20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def fresh_run_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="ea-bench-", dir="/tmp"))
    path.chmod(0o700)
    return path


def populate(c: Any, n: int, prefix: str = "svc") -> list[dict[str, Any]]:
    return [c.create(service(f"{prefix}-{i:05d}", replicas=1)) for i in range(n)]


# -- 1. commit → reconcile start ----------------------------------------------------------


def bench_latency(rate: float, seconds: float, keys: int, workers: int = 4) -> None:
    run_dir = fresh_run_dir()
    processes = Processes(run_dir)
    try:
        h.start_registry(processes)
        with h.client(run_dir) as c:
            objects = populate(c, keys)
        h.start_noop(processes, ECSM_ACTORS_NOOP_STATUS="0",
                     ECSM_ACTORS_CONTROLLER_WORKERS=str(workers))
        h.wait_reconciling(run_dir)
        wait_until(lambda: len(h.records(run_dir)) >= keys + 1, timeout=60,
                   what="initial list reconciled")
        writes: list[tuple[str, int, float, float]] = []
        # A durable write takes ~2-3 ms (fsync), so one synchronous client cannot reach the
        # rate alone: several paced writers, each on its own keys and client.
        writers = 3
        total = int(rate * seconds)

        def writer(w: int) -> None:
            mine = list(range(w, keys, writers))
            with h.client(run_dir) as c:
                for i in range(total // writers):
                    due = start + (i * writers + w) / rate
                    while (now := time.monotonic()) < due:
                        time.sleep(min(due - now, 0.0005))
                    j = mine[i % len(mine)]
                    obj = objects[j]
                    replicas = obj["spec"]["deploymentStrategy"]["replicas"] % 9 + 1
                    sent = time.monotonic()
                    obj = c.update(with_changes(obj, spec__deploymentStrategy__replicas=replicas))
                    acked = time.monotonic()
                    objects[j] = obj
                    writes.append((h.spec_key(obj), obj["metadata"]["resourceVersion"], sent,
                                   acked))

        seen_file = run_dir / "probe.txt"
        processes.spawn(sys.executable, __file__, "--probe", h.config(run_dir).events_endpoint,
                        str(seen_file), module=False, log_name="probe")
        wait_until(lambda: seen_file.exists() and seen_file.read_text().startswith("ready"),
                   timeout=20, what="probe subscribed")
        time.sleep(0.3)  # a SUB needs a moment before it receives (slow joiner)
        start = time.monotonic() + 0.05
        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        achieved = len(writes) / (time.monotonic() - start)
        wait_until(lambda: all((k, rv) in h.starts(run_dir) for k, rv, _, _ in writes[-50:]),
                   timeout=30, what="last writes reconciled")
        starts = h.starts(run_dir)
        wait_until(lambda: len(seen_file.read_text().splitlines()) > len(writes), timeout=10,
                   what="probe saw every event")
        seen = {int(a): float(b) for a, b in
                (line.split() for line in seen_file.read_text().splitlines()[1:])}
        from_send = [(starts[(k, rv)] - s) * 1000 for k, rv, s, _ in writes if (k, rv) in starts]
        from_seen = [(starts[(k, rv)] - seen[rv]) * 1000 for k, rv, _, _ in writes
                     if (k, rv) in starts and rv in seen]
        write_ms = [(a - s) * 1000 for _, _, s, a in writes]
        print(f"commit → reconcile start at {achieved:.0f} writes/s ({len(writes)} writes, "
              f"{len(from_seen)} matched, {keys} keys, {workers} workers):")
        print(f"  from the event reaching another process: p50 {percentile(from_seen, 0.5):6.2f} ms"
              f"  p99 {percentile(from_seen, 0.99):6.2f} ms  (target p99 < 3 ms)")
        print(f"  from the write being sent (upper bound): p50 {percentile(from_send, 0.5):6.2f} ms"
              f"  p99 {percentile(from_send, 0.99):6.2f} ms")
        print(f"  the durable write itself (send → ack):   p50 {percentile(write_ms, 0.5):6.2f} ms"
              f"  p99 {percentile(write_ms, 0.99):6.2f} ms")
    finally:
        processes.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


# -- 2. reconciles per second ---------------------------------------------------------------


class Counting:
    def __init__(self, total: int, read: bool) -> None:
        self.total = total
        self.read = read
        self.count = 0
        self.lock = threading.Lock()
        self.first = 0.0
        self.last = 0.0
        self.done = threading.Event()

    def reconcile(self, ctx: ReconcileContext, key: str) -> Result:
        if self.read:
            namespace, name = key.split("/")
            ctx.registry.get(ctx.kind, namespace, name)
        with self.lock:
            now = time.perf_counter()
            if not self.count:
                self.first = now
            self.count += 1
            self.last = now
            if self.count >= self.total:
                self.done.set()
        return Result()


def bench_throughput(n: int) -> None:
    run_dir = fresh_run_dir()
    processes = Processes(run_dir)
    try:
        h.start_registry(processes)
        with h.client(run_dir) as c:
            populate(c, n)
        cfg = Config(run=RunSettings(dir=str(run_dir)))
        import logging
        logging.disable(logging.INFO)  # one outcome line per reconcile would dominate
        for read in (False, True):
            for workers in (1, 4):
                reconciler = Counting(n, read)
                spec = ControllerSpec(name="bench", kind="ECSMService", reconciler=reconciler,
                                      workers=workers)
                controller = Controller(spec, cfg, report_liveness=False).start()
                reconciler.done.wait(120)
                controller.stop(1.0)
                rate = (reconciler.count - 1) / max(1e-9, reconciler.last - reconciler.first)
                what = "GET + done" if read else "no-op     "
                print(f"  {what} reconciles/s with {workers} worker(s): {rate:8.0f}  "
                      f"({reconciler.count} keys)")
        logging.disable(logging.NOTSET)
    finally:
        processes.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


# -- 3. informer memory -----------------------------------------------------------------------


class ListOf:
    def __init__(self, items: list[dict[str, Any]], rv: int) -> None:
        self.items, self.resource_version, self.epoch = items, rv, "e"
        self.versions = [(f"{o['metadata']['namespace']}/{o['metadata']['name']}",
                          o["metadata"]["resourceVersion"]) for o in items]


class OneList:
    def __init__(self, result: ListOf) -> None:
        self.result = result

    def list(self, kind: str, namespace: str | None = None) -> ListOf:
        return self.result

    def list_versions(self, kind: str, namespace: str | None = None) -> ListOf:
        return self.result

    def watch_since(self, rv: int) -> Any:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


class Quiet:
    def on_add(self, key: str, rv: int) -> None: ...
    def on_update(self, key: str, rv: int) -> None: ...
    def on_delete(self, key: str, rv: int) -> None: ...
    def on_resync(self, key: str, rv: int) -> None: ...


def stored_object(i: int) -> bytes:
    """An ECSMService as the registry stores and sends it: defaulted, with metadata and a
    status, msgpack-encoded."""
    obj = api.prepare(service(f"svc-{i:06d}", replicas=3))
    obj["metadata"].update(uid=f"{i:032x}", resourceVersion=1000 + i, generation=1,
                           creationTimestamp="2026-11-26T08:51:49Z")
    obj["status"] = {"replicas": 3, "readyReplicas": 3, "updatedReplicas": 3,
                     "availableReplicas": 3, "observedGeneration": 1,
                     "currentRevision": "0123456789",
                     "conditions": [{"type": "Available", "status": "True", "reason": "Ready",
                                     "message": "3/3 ready",
                                     "lastTransitionTime": "2026-11-26T08:51:49Z"}]}
    return msgpack.packb(obj, use_bin_type=True)


def decoded(frames: list[bytes]) -> list[dict[str, Any]]:
    return [msgpack.unpackb(f, raw=False) for f in frames]


def retained(build: Any) -> int:
    """Bytes still allocated after ``build()`` returned and garbage was collected."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    keep = build()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del keep
    return after - before


def bench_memory(n: int) -> None:
    template = stored_object(0)
    print(f"informer memory, {n} objects (one object is {len(template)} bytes of msgpack):")
    frames = [stored_object(i) for i in range(n)]

    def version_cache() -> Informer:
        informer = Informer("ECSMService", Quiet(),
                            registry_factory=lambda: OneList(ListOf(decoded(frames), 10 ** 6)),
                            subscriber_factory=lambda: None,  # type: ignore[arg-type,return-value]
                            settings=ControllerSettings(resync_period=0))
        informer._relist("benchmark")  # what the first step does, without a subscriber
        informer._registry = None  # drop the fake (and the list it holds)
        assert len(informer.keys()) == n
        return informer

    def object_cache() -> dict[str, dict[str, Any]]:
        items = decoded(frames)
        return {f"{o['metadata']['namespace']}/{o['metadata']['name']}": o for o in items}

    versions = retained(version_cache)
    objects = retained(object_cache)
    print(f"  version cache (key → resourceVersion): {versions / MiB:7.1f} MiB "
          f"({versions / n:.0f} B/object)")
    print(f"  full object cache:                     {objects / MiB:7.1f} MiB "
          f"({objects / n:.0f} B/object)")
    met = objects >= 10 * versions and versions <= 20 * MiB
    print(f"  ratio: {objects / versions:.1f}× smaller "
          f"(targets: ≥ 10× and ≤ 20 MiB → {'met' if met else 'MISSED'})")


def probe(endpoint: str, out: str) -> None:
    """``--probe``: an independent subscriber process; writes ``seq monotonic`` per event
    received, i.e. when the commit became visible to another process."""
    from ecsm_actors.registry.client import Subscriber

    sub = Subscriber(endpoint, kinds=("ECSMService",))
    with open(out, "w") as f:
        f.write("ready\n")
        f.flush()
        while True:
            message = sub.recv(None)
            now = time.monotonic()
            if message is not None and not hasattr(message, "type"):
                continue  # a heartbeat
            if message is not None:
                f.write(f"{message.seq} {now:.6f}\n")
                f.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller runs")
    parser.add_argument("--probe", nargs=2, metavar=("ENDPOINT", "FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(*args.probe)
        return
    os.environ.pop("ECSM_ACTORS_RUN_DIR", None)
    q = args.quick
    for workers in (2, 4):
        bench_latency(rate=500, seconds=2 if q else 6, keys=500 if q else 1000, workers=workers)
    print("reconciles/s, initial list of an in-process controller:")
    bench_throughput(2000 if q else 5000)
    bench_memory(20_000 if q else 100_000)


if __name__ == "__main__":
    main()
