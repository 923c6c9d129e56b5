"""The LMDB store in its steady state: a full request window, and data.mdb under sustained
writes — what the fill-and-stop benches never show.

Run: ``.venv/bin/python tests/bench/bench_store_steady.py [window|growth]
[--against DIR] [--rounds N] [--rates 200,500,1000] [--seconds S]``. In-process, one child
process per round (real LMDB and write-ahead log on this disk, in a temporary directory);
``--against DIR``: a clone of the code before (``git clone -q /work/main DIR`` at the
commit to compare with), run alternately with this tree, round by round, which goes first
swapping, each figure printed with its ratio (this / before) and ``uptime``. ``--pages
N``: this tree's store with ``registry.checkpoint_pages`` N.

``window``: a store of 1,000 objects whose request window is full (100,000 records, the
default ``registry.request_window``, filled with recorded refusals), then ``--writes``
updates back to back (or ``--rate`` a second), one transaction each with a ``requestId``
as every client write has, the registry's heartbeat (``Store.release_pages``) once a
second: each write's wall time (p50, p99, p99.9, max), the loop thread's CPU a write
(heartbeats included), the window's count, and the time writes spent pruning it.

``growth``: 10,000 objects of 1.1 KiB (created 100 a transaction), then, for each rate,
updates of random objects paced at that rate for ``--seconds``, each with a
``requestId``, the heartbeat once a second: data.mdb's allocated blocks after the fill and
after the updates, its live pages (the sub-databases' pages: the rest is free pages,
held for a checkpoint's snapshot or reusable), the writes' p50/p99, the log appends'
(``pwrite`` + ``fdatasync``, what a watcher's event waits for) p50/p99, and the
checkpoints made meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: Records of a full window (the default registry.request_window).
WINDOW = 100_000


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


def _value(name: str) -> dict[str, Any]:
    from tests.bench.bench_registry import value
    return value(name)


def _timed_appends(wal: Any) -> list[float]:
    """Durations of the log's appends (``pwrite`` + ``fdatasync``), from now on."""
    spans: list[float] = []
    real = wal.WriteAheadLog.append

    def append(self: Any, payload: bytes) -> Any:
        t = time.perf_counter()
        try:
            return real(self, payload)
        finally:
            spans.append(time.perf_counter() - t)

    wal.WriteAheadLog.append = append
    return spans


def _timed_prunes() -> list[float]:
    """Durations of the request window's prunes in write transactions (not the
    heartbeat's), from now on."""
    from ecsm_actors.store import window

    spans: list[float] = []
    real = window.RequestWindow.prune

    def prune(self: Any, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return real(self, *a, **k)
        finally:
            if not k.get("idle"):  # a write's, not the heartbeat's
                spans.append(time.perf_counter() - t)

    window.RequestWindow.prune = prune  # type: ignore[method-assign]
    return spans


def _blocks(path: Path) -> tuple[float, float]:
    """(allocated MiB, apparent MiB) of ``path``."""
    st = os.stat(path)
    return st.st_blocks * 512 / 2**20, st.st_size / 2**20


def _live_mib(store: Any) -> float:
    return store.usage() * store.map_size / 2**20


def _filled(store: Any, count: int, name: str) -> dict[str, Any]:
    """``count`` objects created 100 a transaction, named ``name.format(i)``: each
    stored object by its name."""
    from ecsm_actors.protocol import Op
    from ecsm_actors.store import Write

    objs: dict[str, Any] = {}
    for first in range(0, count, 100):
        batch = [Write(op=Op.CREATE, fields={"object": _value(name.format(i))})
                 for i in range(first, min(first + 100, count))]
        for r in store.execute(batch):
            obj = r.result  # type: ignore[union-attr]
            objs[obj["metadata"]["name"]] = obj
    return objs


def _paced_updates(store: Any, objs: dict[str, Any], writes: int,
                   rate: float) -> list[float]:
    """``writes`` updates of objects drawn from ``objs`` (seeded), ``rate`` a second (0:
    back to back), each with its ``requestId``, the heartbeat (``release_pages``) once a
    second as the registry's loop calls it; ``objs`` follows the stored versions.
    Returns each write's wall time."""
    from ecsm_actors.protocol import Op
    from ecsm_actors.store import Write

    names = sorted(objs)
    rng = random.Random(1)
    walls: list[float] = []
    start = time.monotonic()
    beat = start + 1.0
    for i in range(writes):
        if rate:
            due = start + i / rate
            while (now := time.monotonic()) < due:
                if now >= beat:
                    store.release_pages()
                    beat = now + 1.0
                    continue
                time.sleep(min(due - now, beat - now))
        name = rng.choice(names)
        obj = objs[name]
        obj["spec"]["deploymentStrategy"]["replicas"] = i % 7 + 1
        w = Write(op=Op.UPDATE, fields={"object": obj, "requestId": uuid.uuid4().hex})
        t = time.perf_counter()
        r = store.execute([w])[0]
        walls.append(time.perf_counter() - t)
        objs[name] = r.result  # type: ignore[union-attr]
        if time.monotonic() >= beat:
            store.release_pages()
            beat = time.monotonic() + 1.0
    return walls


def child_window(tmp: Path, writes: int, pages: int, rate: float) -> dict[str, Any]:
    from ecsm_actors.protocol import Op
    from ecsm_actors.store import Store, Write

    budget = {"checkpoint_pages": pages} if pages else {}  # the code before has none
    store = Store(tmp / "data", map_size=2 << 30, request_window=WINDOW, **budget)
    objs = _filled(store, 1000, "o{}")
    for _ in range(0, WINDOW + 64, 1000):  # refusals (NotFound), each recorded
        store.execute([Write(op=Op.DELETE, fields={
            "kind": "ECSMService", "namespace": "default", "name": "absent",
            "requestId": uuid.uuid4().hex}) for _ in range(1000)])
    store.checkpoint()
    store.release_pages()
    prunes = _timed_prunes()
    cpu0 = time.thread_time()
    walls = _paced_updates(store, objs, writes, rate)
    cpu = (time.thread_time() - cpu0) / writes
    with store._env.begin() as txn:  # noqa: SLF001 - the window's size is the point
        count = store.window.count(txn)
    store.close()
    spent = sorted(prunes, reverse=True)
    return {"p50": pct(walls, 50), "p95": pct(walls, 95), "p98": pct(walls, 98),
            "p99": pct(walls, 99), "p999": pct(walls, 99.9),
            "max": max(walls), "mean": statistics.fmean(walls), "cpu": cpu,
            "window": count, "prune_mean": sum(prunes) / writes,
            "prune_top3pct": statistics.fmean(spent[:max(1, writes * 3 // 100)])}


def child_growth(tmp: Path, rate: float, seconds: float, pages: int) -> dict[str, Any]:
    from ecsm_actors.store import Store, wal

    budget = {"checkpoint_pages": pages} if pages else {}  # the code before has none
    store = Store(tmp / "data", map_size=2 << 30, **budget)
    data = tmp / "data" / "data.mdb"
    objs = _filled(store, 10_000, "o{:05}")
    store.checkpoint()
    store.release_pages()
    filled, _ = _blocks(data)
    checkpoints = store.wal_stats()["checkpoints"]
    appends = _timed_appends(wal)
    n = int(rate * seconds)
    start = time.monotonic()
    cpu0 = time.thread_time()
    walls = _paced_updates(store, objs, n, rate)
    took = time.monotonic() - start
    cpu = (time.thread_time() - cpu0) / n
    after, apparent = _blocks(data)
    live = _live_mib(store)
    stats = store.wal_stats()
    store.close()
    return {"filled": filled, "after": after, "apparent": apparent, "live": live,
            "free": apparent - live, "rate": n / took, "p50": pct(walls, 50),
            "p99": pct(walls, 99), "max": max(walls), "cpu": cpu,
            "log_p50": pct(appends, 50), "log_p99": pct(appends, 99),
            "checkpoints": stats["checkpoints"] - checkpoints}


def run_child(code: Path, args: list[str]) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": f"{code}{os.pathsep}{ROOT}"}
    out = subprocess.run([sys.executable, __file__, "--child", *args], env=env,
                         capture_output=True, text=True, check=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


UNITS = {"p50": 1e3, "p95": 1e3, "p98": 1e3, "p99": 1e3, "p999": 1e3, "max": 1e3,
         "mean": 1e3, "cpu": 1e6, "log_p50": 1e3, "log_p99": 1e3, "prune_mean": 1e6,
         "prune_top3pct": 1e6}
LABELS = {"cpu": "µs", "prune_mean": "µs", "prune_top3pct": "µs", "window": "records",
          "checkpoints": "", "rate": "/s"}


def show(label: str, runs: dict[str, list[dict[str, Any]]]) -> None:
    print(f"{label}  (uptime: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f})")
    names = list(runs)
    for key in runs[names[0]][0]:
        scale = UNITS.get(key, 1.0)
        unit = LABELS.get(key, "ms" if key in UNITS else "MiB")
        cells = []
        for name in names:
            vals = [r[key] * scale for r in runs[name]]
            cells.append("/".join(f"{v:.3g}" for v in vals))
        line = f"  {key:<12} " + "   ".join(
            f"{n}: {c} {unit}" for n, c in zip(names, cells, strict=True))
        if len(names) == 2:
            a = statistics.median(r[key] for r in runs[names[0]])
            b = statistics.median(r[key] for r in runs[names[1]])
            if b:
                line += f"   ratio {a / b:.2f}×"
        print(line, flush=True)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("window", "growth"), nargs="?", default="window")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--against", type=Path, help="a clone of the code before")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--writes", type=int, default=3000)
    p.add_argument("--rates", default="200,500,1000")
    p.add_argument("--rate", type=float, default=0.0,
                   help="window: writes a second (0: back to back)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--pages", type=int, default=0,
                   help="registry.checkpoint_pages for this tree (not for --against)")
    a = p.parse_args()
    if a.child:
        tmp = Path(tempfile.mkdtemp(prefix="bench-steady-"))
        try:
            if a.mode == "window":
                out = child_window(tmp, a.writes, a.pages, a.rate)
            else:
                out = child_growth(tmp, a.rate, a.seconds, a.pages)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        print(json.dumps(out))
        return 0
    codes = {"this": ROOT}
    extra = ["--pages", str(a.pages)] if a.pages else []
    if a.against is not None:
        codes["before"] = a.against
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    jobs = ([(f"window @{a.rate:g}/s" if a.rate else "window, back to back",
              ["window", "--writes", str(a.writes), "--rate", str(a.rate)])]
            if a.mode == "window" else
            [(f"growth @{r}/s, {a.seconds:g} s",
              ["growth", "--rate", r, "--seconds", str(a.seconds)])
             for r in a.rates.split(",")])
    for label, args in jobs:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in codes}
        order = list(codes)
        for _ in range(a.rounds):
            for name in order:
                runs[name].append(run_child(codes[name], args + extra * (name == "this")))
            order.reverse()
        show(label, runs)
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
