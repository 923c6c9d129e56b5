"""Registry benchmark: the real REQ/REP path, durable, against the physical floor it sits on.

Run: ``.venv/bin/python tests/bench/bench_registry.py [--rounds N] [--quick]``

Every write figure is measured in rounds, each round right after a fresh measure of its
floor, so a shared, noisy machine skews both alike; the printed ratio is the median of
the per-round ratios. The floor is what one registry write physically is: one durable
LMDB commit (default sync flags, same sub-databases) of the value as the registry stores
it — the object (1.1 KiB) and its event in the log (a stub of 30 B while the object is
current) — made back to back
in-process. A commit of the bare 0.75 KiB value alone is printed too, for reference.

* floors: raw durable LMDB commits (p50, commits/s); the store's own floor since its
  write-ahead log, one record (the registry write's puts, about 1.2 KiB) ``pwrite`` +
  ``fdatasync`` into a preallocated file, with its ratio to the LMDB commit; bare
  ZeroMQ ipc REQ/REP round trip
  to another process (p50); read + decode of 10,000 values in-process; api.prepare;
* creates/s and updates/s from 1 client, and from 4 client processes;
* create acknowledged → event received by a subscriber in another process, p50/p99 at
  ~500 writes/s, the writer sleeping between writes (and request sent → event received);
* LIST of 10,000 objects; registry RSS (steady state, and right after a LIST).

``--window``: only the cost of exactly once — 1-client creates/s and updates/s with a
``requestId`` against the same without, in alternating paired rounds (raw frames on a REQ
socket), the registry's request window held at 1,000 records so that, once full, every
write also prunes one; and the rate of retries answered from the window (replays/s).

``--events``: object writes beside an event flood — 1-client creates/s alone against the
same while another process sends RECORD_EVENTS (batches of 100 occurrences every 10 ms,
about 10,000 a second — 5x the registry's budget — each of a new object: no aggregation
helps), in alternating paired rounds;
the flood's occurrences/s, and the event records kept at the end (bounded by
``registry.event_limit``).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import lmdb  # noqa: E402
import msgpack  # noqa: E402
import psutil  # noqa: E402
import zmq  # noqa: E402

from ecsm_actors.registry.client import RegistryClient  # noqa: E402

PY = sys.executable


def value(name: str, replicas: int = 2, namespace: str = "default") -> dict[str, Any]:
    """A realistic ECSMService of about 0.75 KiB on the wire (1.1 KiB once stored)."""
    return {
        "apiVersion": "ecsm.sh/v1",
        "kind": "ECSMService",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"app": "bench", "tier": "web"}},
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


def report(name: str, figure: str, ratio: str = "", target: str = "") -> None:
    print(f"  {name:<40} {figure:>12}  {ratio:<44} {target}", flush=True)


# -- floors ---------------------------------------------------------------------------


def stored_write(tmp: Path, obj: dict[str, Any]) -> tuple[bytes, bytes]:
    """The bytes the registry stores for a create of ``obj``: (object, event as kept in
    the log — a stub while the object is current, see lmdb_store)."""
    from ecsm_actors.protocol import Op
    from ecsm_actors.store import Store
    store = Store(tmp / "stored", map_size=1 << 24)
    try:
        created = store.write(Op.CREATE, object=obj)
        with store._env.begin() as txn:  # noqa: SLF001 - the bytes kept are the point
            event = bytes(txn.get((1).to_bytes(8, "big"), db=store._events))  # noqa: SLF001
    finally:
        store.close()
    return msgpack.packb(created, use_bin_type=True), event


class RawCommits:
    """Durable LMDB commits in-process, back to back: the write floor. ``event`` given,
    each commit is a registry write's: the object put in ``objects`` and its event
    appended to ``events``; else a single put of ``body``."""

    def __init__(self, path: Path, body: bytes, event: bytes | None = None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(path), map_size=1 << 30, max_dbs=3)
        self.objects = self.env.open_db(b"objects")
        self.events = self.env.open_db(b"events")
        self.env.open_db(b"meta")
        self.body, self.event = body, event
        self.i = 0

    def measure(self, n: int) -> tuple[float, float]:
        """(p50 seconds, commits/s) of ``n`` commits."""
        times = []
        start = time.perf_counter()
        for _ in range(n):
            self.i += 1
            t = time.perf_counter()
            with self.env.begin(write=True) as txn:
                txn.put(f"ECSMService/default/raw-{self.i}".encode(), self.body,
                        db=self.objects)
                if self.event is not None:
                    txn.put(self.i.to_bytes(8, "big"), self.event, db=self.events,
                            append=True)
            times.append(time.perf_counter() - t)
        return statistics.median(times), n / (time.perf_counter() - start)


class WalRecords:
    """The store's write floor behind its write-ahead log: one record ``pwrite`` and
    ``fdatasync``'d after the one before, in a file allocated ahead (as the log is)."""

    def __init__(self, path: Path, record: bytes, size: int = 64 << 20) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.posix_fallocate(self.fd, 0, size)
        os.fsync(self.fd)
        self.record, self.size, self.offset = record, size, 0

    def measure(self, n: int) -> tuple[float, float]:
        """(p50 seconds, records/s) of ``n`` records."""
        times = []
        start = time.perf_counter()
        for _ in range(n):
            if self.offset + len(self.record) > self.size:
                self.offset = 0
            t = time.perf_counter()
            os.pwrite(self.fd, self.record, self.offset)
            os.fdatasync(self.fd)
            times.append(time.perf_counter() - t)
            self.offset += len(self.record)
        return statistics.median(times), n / (time.perf_counter() - start)

    def close(self) -> None:
        os.close(self.fd)


def wal_record(stored: bytes, event: bytes) -> bytes:
    """The log record of a create as the store writes it (object put, event appended)."""
    from ecsm_actors.store import wal
    ops = [wal.PUT, "objects", b"ECSMService/default/raw-1", stored,
           wal.APPEND, "events", (1).to_bytes(8, "big"), event]
    return bytes(16) + wal.encode(ops)  # a frame: its head (length, crc32, generation)


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


# -- clients --------------------------------------------------------------------------

WORKER = """
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from tests.bench.bench_registry import value
from ecsm_actors.registry.client import RegistryClient
c = RegistryClient(sys.argv[2], timeout=60)
c.ping()
print("up", flush=True)
for line in sys.stdin:
    op, prefix, first, n, go = line.split()
    first, n = int(first), int(n)
    print("ready", flush=True)
    while not os.path.exists(go):
        time.sleep(0.0005)
    t0 = time.monotonic()
    for i in range(first, first + n):
        obj = value(f"{prefix}-{i}", replicas=2 if op == "create" else 3, namespace="bulk")
        c.create(obj) if op == "create" else c.update(obj)
    print(json.dumps({"t0": t0, "t1": time.monotonic()}), flush=True)
"""


class Workers:
    """Client processes, each with its own client (by default a RegistryClient of
    ``args[0]``), started once. ``script`` reads lines ``OP PREFIX FIRST N GO`` and
    answers ``ready``, then a JSON span once the GO file exists."""

    def __init__(self, args: list[str], count: int, tmp: Path, *,
                 script: str = WORKER) -> None:
        self.tmp = tmp
        self.round = 0
        self.procs = [subprocess.Popen([PY, "-c", script, str(ROOT), *args],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       text=True) for _ in range(count)]
        for p in self.procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "up"

    def run(self, op: str, first: int, n: int) -> float:
        """Writes/s of all workers doing ``n`` ops each, started together."""
        self.round += 1
        go = self.tmp / f"go-{id(self)}-{self.round}"
        for k, p in enumerate(self.procs):
            assert p.stdin is not None
            p.stdin.write(f"{op} w{k} {first} {n} {go}\n")
            p.stdin.flush()
        for p in self.procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()
        spans = [json.loads(p.stdout.readline()) for p in self.procs]  # type: ignore[union-attr]
        wall = max(s["t1"] for s in spans) - min(s["t0"] for s in spans)
        return len(self.procs) * n / wall

    def close(self) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.close()
            p.wait(timeout=10)


def one_client_rate(client: RegistryClient, op: str, first: int, n: int) -> tuple[float, float]:
    """(writes/s, p50 seconds) of one client."""
    times = []
    start = time.perf_counter()
    for i in range(first, first + n):
        obj = value(f"one-{i}", replicas=2 if op == "create" else 3)
        t = time.perf_counter()
        client.create(obj) if op == "create" else client.update(obj)
        times.append(time.perf_counter() - t)
    return n / (time.perf_counter() - start), statistics.median(times)


def paired(rounds: int, floor: RawCommits, n_floor: int,
           run: Callable[[int], float]) -> tuple[float, float, str]:
    """Median figure, median floor rate, and the per-round ratios figure/floor as text
    (median, best)."""
    figures, floors, ratios = [], [], []
    for r in range(rounds):
        _, floor_rate = floor.measure(n_floor)
        figure = run(r)
        figures.append(figure)
        floors.append(floor_rate)
        ratios.append(figure / floor_rate)
    ratio = f"{statistics.median(ratios):.2f}x raw (best {max(ratios):.2f}x)"
    return statistics.median(figures), statistics.median(floors), ratio


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
    last = client.ping()["resourceVersion"] + n
    sub = subprocess.Popen([PY, "-c", SUBSCRIBER, str(ROOT), events_endpoint, str(last)],
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None and sub.stdout.readline().strip() == "ready"
    time.sleep(0.5)  # the SUB connection settles (slow joiner)
    sent, acked = {}, {}
    period, next_at = 1.0 / rate, time.monotonic()
    for i in range(n):
        # Sleep, not spin: a spinning writer takes one of the machine's cores from the
        # registry and the subscriber it measures.
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += period
        t = time.monotonic()
        rv = client.create(value(f"lat-{i}"))["metadata"]["resourceVersion"]
        sent[rv], acked[rv] = t, time.monotonic()
    received = {int(k): v for k, v in json.loads(sub.stdout.readline()).items()}
    sub.wait(timeout=10)
    missing = [rv for rv in acked if rv not in received]
    assert not missing, f"{len(missing)} events not received"
    return ([received[rv] - acked[rv] for rv in acked],
            [received[rv] - sent[rv] for rv in acked])


def window_cost(endpoint: str, rounds: int, n: int) -> None:
    """Writes/s with and without requestId (see the module docstring)."""
    from ecsm_actors import protocol
    from ecsm_actors.protocol import Op
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.connect(endpoint)

    def call(frame: bytes) -> dict[str, Any]:
        sock.send(frame)
        reply: dict[str, Any] = msgpack.unpackb(sock.recv())
        assert reply["ok"], reply
        return reply

    def run(op: Op, with_id: bool, r: int) -> float:
        tag = "id" if with_id else "no"
        frames = []
        for i in range(n):
            fields: dict[str, Any] = {"object": value(
                f"w{r}-{tag}-{i}", replicas=2 if op is Op.CREATE else 3, namespace="window")}
            if with_id:
                fields["requestId"] = f"bench-{op}-{r}-{i}"
            frames.append(protocol.encode_request(op, i, **fields))
        start = time.perf_counter()
        for frame in frames:
            call(frame)
        return n / (time.perf_counter() - start)

    for op in (Op.CREATE, Op.UPDATE):
        plain, keyed, ratios = [], [], []
        for r in range(rounds):
            order = (False, True) if r % 2 == 0 else (True, False)
            rates = {with_id: run(op, with_id, r) for with_id in order}
            plain.append(rates[False])
            keyed.append(rates[True])
            ratios.append(rates[True] / rates[False])
        report(f"1 client {op.lower()}s/s without requestId", f"{statistics.median(plain):,.0f}/s")
        report(f"1 client {op.lower()}s/s with requestId", f"{statistics.median(keyed):,.0f}/s",
               f"{statistics.median(ratios):.3f}x without (per-round ratios "
               f"{', '.join(f'{x:.3f}' for x in ratios)})", "target >= 0.90x")
    retry = protocol.encode_request(Op.CREATE, 1, requestId="bench-retry",
                                    object=value("retried", namespace="window"))
    call(retry)
    replayed = 0
    start = time.perf_counter()
    for _ in range(n):
        sock.send(retry)
        replayed += msgpack.unpackb(sock.recv()).get("replayed", False) is True
    report("retries of one create answered again", f"{n / (time.perf_counter() - start):,.0f}/s",
           f"{replayed} of {n} replayed")
    sock.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds per figure")
    parser.add_argument("--quick", action="store_true", help="smaller rounds (smoke run)")
    parser.add_argument("--window", action="store_true",
                        help="only the cost of requestId (exactly once)")
    parser.add_argument("--events", action="store_true",
                        help="only object writes beside an event flood")
    args = parser.parse_args()
    if args.window:
        return window_main(args.rounds, 100 if args.quick else 300)
    if args.events:
        return events_main(args.rounds, 100 if args.quick else 300)
    n1 = 100 if args.quick else 500      # 1-client writes per round
    n4 = 100 if args.quick else 500      # writes per worker per round (x4 workers)
    rounds = 2 if args.quick else args.rounds
    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-", dir="/tmp"))
    tmp.chmod(0o700)
    body = msgpack.packb(value("raw"), use_bin_type=True)
    print(f"registry benchmark: value {len(body)} B on the wire, durable LMDB (default sync), "
          f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}; {rounds} paired rounds\n")
    print("floors")
    stored, event = stored_write(tmp, value("raw"))
    floor = RawCommits(tmp / "raw", stored, event)
    commit_p50, commit_rate = floor.measure(2000 if not args.quick else 300)
    report("raw durable LMDB commit p50", ms(commit_p50),
           f"object {len(stored)} B + event {len(event)} B")
    report("raw durable LMDB commits/s", f"{commit_rate:,.0f}/s")
    record = wal_record(stored, event)
    wal_floor = WalRecords(tmp / "wal-floor", record)
    wal_p50, wal_rate = wal_floor.measure(2000 if not args.quick else 300)
    wal_floor.close()
    report("WAL record pwrite + fdatasync p50 (the store's floor)", ms(wal_p50),
           f"{len(record)} B, {wal_rate:,.0f}/s; {wal_p50 / commit_p50:.2f}x raw LMDB "
           f"commit p50, {wal_rate / commit_rate:.2f}x its rate")
    bare = RawCommits(tmp / "bare", body)
    bare_p50, bare_rate = bare.measure(2000 if not args.quick else 300)
    bare.env.close()
    report("  (bare value put alone) p50", ms(bare_p50), f"{len(body)} B, {bare_rate:,.0f}/s")
    rtt = ipc_floor(tmp, 3000, body)
    report("bare zmq ipc round trip p50", ms(rtt))
    decode_10k = decode_floor(tmp, 10_000, body)
    report("read + decode of 10,000 values in-process", ms(decode_10k))
    from ecsm_actors import api
    samples = []
    for i in range(300):
        t = time.perf_counter()
        api.prepare(value(f"v{i}"))
        samples.append(time.perf_counter() - t)
    report("api.prepare of the value in-process p50", ms(statistics.median(samples)),
           f"{statistics.median(samples) / commit_p50:.2f}x raw commit p50")

    run_dir = tmp / "run"
    run_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update(ECSM_ACTORS_RUN_DIR=str(run_dir), ECSM_ACTORS_LOG_LEVEL="WARNING")
    registry = subprocess.Popen([PY, "-m", "ecsm_actors", "registry"], env=env, cwd=ROOT)
    workers = None
    try:
        endpoint = f"ipc://{run_dir}/registry.sock"
        client = RegistryClient(endpoint, timeout=60)
        client.ping()
        rss_empty = psutil.Process(registry.pid).memory_info().rss
        print("\nthrough the registry (REQ/REP, durable; ratio = median of per-round ratios)")
        p50s: list[float] = []

        def one(op: str) -> Callable[[int], float]:
            def run(r: int) -> float:
                rate, p50 = one_client_rate(client, op, r * n1, n1)
                p50s.append(p50)
                return rate
            return run

        for op in ("create", "update"):
            p50s.clear()
            rate, fl, ratio = paired(rounds, floor, n1, one(op))
            report(f"1 client {op}s/s", f"{rate:,.0f}/s", f"{ratio}, raw {fl:,.0f}/s",
                   "target >= 0.55x")
            report(f"  1 client {op} p50", ms(statistics.median(p50s)))
        workers = Workers([endpoint], 4, tmp)

        def four(w: Workers, op: str) -> Callable[[int], float]:
            def run(r: int) -> float:
                return w.run(op, r * n4, n4)
            return run

        for op in ("create", "update"):
            rate, fl, ratio = paired(rounds, floor, n1, four(workers, op))
            report(f"4 clients {op}s/s", f"{rate:,.0f}/s", f"{ratio}, raw {fl:,.0f}/s",
                   "target >= 2.2x")
        workers.close()
        workers = None

        to_event, sent_to_event = event_latency(client, f"ipc://{run_dir}/events.sock",
                                                300 if args.quick else 1500, 500.0)
        report("create ack -> event p50 @500/s", ms(pct(to_event, 50)),
               f"{pct(to_event, 50) / rtt:.2f}x ipc rtt")
        report("create ack -> event p99 @500/s", ms(pct(to_event, 99)),
               f"{pct(to_event, 99) / rtt:.2f}x ipc rtt", "target <= 1 ms")
        report("  create sent -> event p50 @500/s", ms(pct(sent_to_event, 50)))
        report("  create sent -> event p99 @500/s", ms(pct(sent_to_event, 99)))

        bulk = len(client.list("ECSMService", "bulk").items)
        for i in range(bulk, 10_000):
            client.create(value(f"fill-{i}", namespace="bulk"))
        listed, peak = [], 0
        for _ in range(5):
            t = time.perf_counter()
            result = client.list("ECSMService", "bulk")
            listed.append(time.perf_counter() - t)
            peak = max(peak, psutil.Process(registry.pid).memory_info().rss)
        count = len(result.items)
        del result
        report(f"LIST of {count:,} objects (median of 5)", ms(statistics.median(listed)),
               f"{statistics.median(listed) / decode_10k:.2f}x in-process decode")
        total = len(client.list("ECSMService").items)
        time.sleep(2.5)  # steady state: past a heartbeat
        proc = psutil.Process(registry.pid)
        rss = proc.memory_info().rss
        report(f"registry RSS, {total:,} objects stored", f"{rss / 2**20:.1f} MiB",
               f"{rss / rss_empty:.2f}x empty registry ({rss_empty / 2**20:.1f} MiB)",
               "target <= 60 MiB")
        report("  registry RSS right after a LIST", f"{peak / 2**20:.1f} MiB")
        client.close()
        print(f"\nfloor again at the end: {floor.measure(1000)[1]:,.0f} commits/s "
              f"(load {os.getloadavg()[0]:.2f})")
    finally:
        if workers is not None:
            workers.close()
        registry.terminate()
        registry.wait(timeout=10)
        floor.env.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def window_main(rounds: int, n: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-", dir="/tmp"))
    tmp.chmod(0o700)
    run_dir = tmp / "run"
    run_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update(ECSM_ACTORS_RUN_DIR=str(run_dir), ECSM_ACTORS_LOG_LEVEL="WARNING",
               ECSM_ACTORS_REGISTRY_REQUEST_WINDOW="1000")
    print(f"registry benchmark, exactly once: {os.cpu_count()} cpus, load "
          f"{os.getloadavg()[0]:.2f}; {rounds} paired rounds of {n} writes\n")
    registry = subprocess.Popen([PY, "-m", "ecsm_actors", "registry"], env=env, cwd=ROOT)
    try:
        endpoint = f"ipc://{run_dir}/registry.sock"
        probe = zmq.Context.instance().socket(zmq.REQ)
        probe.connect(endpoint)
        probe.send(msgpack.packb({"v": 1, "id": 0, "op": "PING"}))
        assert probe.poll(15_000), "the registry did not start"
        probe.recv()
        probe.close()
        window_cost(endpoint, rounds, n)
    finally:
        registry.terminate()
        registry.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


FLOOD = """
import sys, time
from pathlib import Path
from ecsm_actors.api.names import format_timestamp
from ecsm_actors.errors import StoreFull
from ecsm_actors.registry.client import RegistryClient
client = RegistryClient(sys.argv[1], timeout=30)
stop, first, sent, taken = Path(sys.argv[2]), int(sys.argv[3]), 0, 0
print("ready", flush=True)
start = time.perf_counter()
while not stop.exists():
    ts = format_timestamp(time.time())
    batch = [{"involvedObject": {"kind": "ECSMService", "namespace": "flood",
                                              "name": f"f-{first + sent + i}"},
                           "type": "Warning", "reason": "Flood", "message": "x" * 200,
                           "count": 1, "firstTimestamp": ts, "lastTimestamp": ts,
                           "source": {"component": "bench"}} for i in range(100)]
    try:
        client.record_events(batch)
        taken += 100
    except StoreFull:  # over the registry's event budget: dropped
        pass
    sent += 100
    time.sleep(0.01)  # 10,000 offered a second: the flood's own CPU is not the figure
print(sent, taken, time.perf_counter() - start, flush=True)
"""


def events_main(rounds: int, n: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-", dir="/tmp"))
    tmp.chmod(0o700)
    run_dir = tmp / "run"
    run_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update(ECSM_ACTORS_RUN_DIR=str(run_dir), ECSM_ACTORS_LOG_LEVEL="WARNING")
    print(f"registry benchmark, object writes beside an event flood: {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f}; {rounds} paired rounds of {n} creates\n")
    registry = subprocess.Popen([PY, "-m", "ecsm_actors", "registry"], env=env, cwd=ROOT)
    try:
        endpoint = f"ipc://{run_dir}/registry.sock"
        client = RegistryClient(endpoint, timeout=60)
        client.ping()
        alone, flooded, ratios, floods, takens = [], [], [], [], []
        for r in range(rounds):
            rate_alone, _ = one_client_rate(client, "create", 2 * r * n, n)
            stop = tmp / f"stop-{r}"
            flood = subprocess.Popen([PY, "-c", FLOOD, endpoint, str(stop), str(r * 10**7)],
                                     env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
            assert flood.stdout is not None
            assert flood.stdout.readline().strip() == "ready"
            time.sleep(0.2)  # the flood under way
            rate_flood, _ = one_client_rate(client, "create", (2 * r + 1) * n, n)
            stop.touch()
            sent, taken, seconds = flood.stdout.readline().split()
            flood.wait(timeout=30)
            alone.append(rate_alone)
            flooded.append(rate_flood)
            ratios.append(rate_flood / rate_alone)
            floods.append(int(sent) / float(seconds))
            takens.append(int(taken) / float(seconds))
        report("1 client creates/s alone", f"{statistics.median(alone):,.0f}/s")
        report("1 client creates/s beside the flood", f"{statistics.median(flooded):,.0f}/s",
               f"{statistics.median(ratios):.2f}x alone (median of rounds, best "
               f"{max(ratios):.2f}x)")
        report("  event flood (other process)", f"{statistics.median(floods):,.0f} "
               "occurrences/s", f"{statistics.median(takens):,.0f}/s taken, the rest "
               "refused")
        kept = len(client.list_events(None))
        report("event records kept after the flood", f"{kept:,}",
               f"registry.event_limit {10_000:,}")
        client.close()
    finally:
        registry.terminate()
        registry.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
