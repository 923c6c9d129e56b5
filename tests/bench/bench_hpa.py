"""Benchmark of the HPA controller (not collected by pytest).

Run: ``.venv/bin/python tests/bench/bench_hpa.py [--hpas 200] [--rounds 3]``. Starts a
simulator, a registry, the service controller and the HPA controller (sync 0.5 s) in a
fresh run dir, then prints:

1. load step → replicas settled: the time from ``set_load`` to the target's spec
   changing, to every new instance running, and to the per-instance usage being back
   inside the tolerance — for a one-step scale (1 → 3) and for a step the default
   scale-up policy (4 Pods or 100 % per 15 s) must split in two (1 → 5 → 8);
2. reconcile cost with N HPAs (N services, N HPAs): per-reconcile latency (p50, p95,
   max) and CPU of the real reconciler (real registry, real ECSM HTTP) run in this
   process, one full round = N reconciles; the pure decision cost; and the CPU share of
   the HPA controller process syncing the N HPAs every 15 s (the default).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from ecsm_actors.controllers.hpa.algorithm import History, decide  # noqa: E402
from ecsm_actors.controllers.hpa.controller import HpaReconciler  # noqa: E402
from ecsm_actors.controllers.hpa.samples import InstanceSample  # noqa: E402
from ecsm_actors.controllers.hpa.spec import parse_spec  # noqa: E402
from ecsm_actors.ecsm.simulator.admin import SimulatorAdmin  # noqa: E402
from ecsm_actors.registry.client import RegistryClient  # noqa: E402
from tests import hpa_harness as h  # noqa: E402
from tests.helpers import Processes, wait_until  # noqa: E402


class Ctx:
    """The part of ReconcileContext the reconciler uses, over a plain registry client."""

    def __init__(self, registry: RegistryClient) -> None:
        self.registry = registry
        self.kind = "ECSMHpa"

    def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.registry.update_status(obj)


def settled(c: RegistryClient, admin: SimulatorAdmin, name: str, sid: str, want: int
            ) -> bool:
    usage = h.running_usage(admin, sid)
    return (h.replicas(c, name) == want and len(usage) == want
            and abs(statistics.mean(usage) / 50 - 1) <= 0.1)


def step(c: RegistryClient, admin: SimulatorAdmin, name: str, load: float,
         marks: list[int]) -> dict[str, float]:
    sid = h.declare(c, admin, name, target=50, max_replicas=10, down_window=3)
    time.sleep(2 * h.SYNC)
    t0 = time.monotonic()
    admin.set_load(sid, cpu=load)
    out: dict[str, float] = {}
    for want in marks:
        def at_spec(w: int = want) -> bool:
            return h.replicas(c, name) == w
        wait_until(at_spec, timeout=60, interval=0.02)
        out[f"spec={want}"] = time.monotonic() - t0
    want = marks[-1]
    wait_until(lambda: h.running_count(admin, sid) == want, timeout=60, interval=0.05)
    out["running"] = time.monotonic() - t0
    wait_until(lambda: settled(c, admin, name, sid, want), timeout=60, interval=0.05)
    out["settled"] = time.monotonic() - t0
    return out


def bench_step(c: RegistryClient, admin: SimulatorAdmin) -> None:
    print(f"load step → replicas settled (HPA sync {h.SYNC}s, instance start 0.2s):")
    for name, label, load, marks in (
            ("step1", "1 → 3 (one step)", 140.0, [3]),
            ("step2", "1 → 8 (default policy 4 Pods/100% per 15 s: 1 → 5 → 8)", 380.0,
             [5, 8])):
        figures = step(c, admin, name, load, marks)
        shown = "  ".join(f"{k} {v:5.2f}s" for k, v in figures.items())
        print(f"  {label:58s} {shown}")


def bench_reconcile(processes: Processes, c: RegistryClient, admin: SimulatorAdmin,
                    n: int, rounds: int) -> None:
    t0 = time.monotonic()
    for i in range(n):
        c.create(h.service(f"s{i:03d}"))
    for i in range(n):
        c.create(h.hpa(f"s{i:03d}", max_replicas=2))

    def ready() -> bool:
        return all((o.get("status") or {}).get("underlyingServiceIDs")
                   for o in c.list("ECSMService").items)
    wait_until(ready, timeout=300, interval=0.5, what="every service on ECSM")
    print(f"\n{n} services + {n} HPAs declared and deployed in {time.monotonic() - t0:.1f}s")

    cfg = h.config(processes.run_dir)
    reconciler = HpaReconciler(cfg)
    ctx = Ctx(c)
    keys = [f"default/s{i:03d}" for i in range(n)]
    latencies: list[float] = []
    walls, cpus = [], []
    for _ in range(rounds):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for key in keys:
            t = time.perf_counter()
            reconciler.reconcile(ctx, key)  # type: ignore[arg-type]
            latencies.append(time.perf_counter() - t)
        walls.append(time.perf_counter() - wall0)
        cpus.append(time.process_time() - cpu0)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print(f"reconcile cost, {n} HPAs, {rounds} rounds (in-process, registry + ECSM HTTP):")
    print(f"  per reconcile   p50 {p(0.5):.2f} ms   p95 {p(0.95):.2f} ms   max {p(1.0):.2f} ms")
    print(f"  one round of {n} wall {statistics.mean(walls):.2f}s   this process's CPU "
          f"{statistics.mean(cpus):.2f}s ({statistics.mean(cpus) / n * 1000:.2f} ms/HPA)")

    spec = parse_spec(h.hpa("x")["spec"], default_tolerance=0.1, downscale_stabilization=300)
    samples = [InstanceSample(name=f"c{i}", ready=True, cpu_percent=40.0 + i, timestamp=0.0)
               for i in range(4)]
    t = time.perf_counter()
    runs = 20_000
    for i in range(runs):
        decide(spec, current=4, samples=samples, history=History(), now=float(i),
               metric_max_age=60.0)
    print(f"  pure decision (4 instances)  {(time.perf_counter() - t) / runs * 1e6:.1f} µs")


def bench_process_cpu(processes: Processes, n: int, seconds: float = 30.0) -> None:
    proc = processes.spawn("controller", "hpa",
                           env=h.hpa_env(ECSM_ACTORS_HPA_SYNC_PERIOD="15"), log_name="hpa15")
    ps = psutil.Process(proc.pid)
    time.sleep(3.0)  # start-up and the first round are not steady state
    cpu0 = sum(ps.cpu_times()[:2])
    time.sleep(seconds)
    used = sum(ps.cpu_times()[:2]) - cpu0
    rss = ps.memory_info().rss / 2**20
    print(f"HPA controller process, {n} HPAs, sync 15 s: CPU {used / seconds * 100:.1f}% of "
          f"one core over {seconds:.0f}s, RSS {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hpas", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="ea-bh-", dir="/tmp"))
    run_dir.chmod(0o700)
    processes = Processes(run_dir)
    try:
        admin = h.start_simulator(processes)
        h.start_registry(processes)
        h.start_service_controller(processes)
        hpa_proc = h.start_hpa_controller(processes)
        with RegistryClient(h.config(run_dir).registry_endpoint, timeout=10.0) as c:
            bench_step(c, admin)
            processes.kill(hpa_proc)  # the 0.5 s controller would compete with the rounds
            hpa_proc.wait(timeout=10)
            bench_reconcile(processes, c, admin, args.hpas, args.rounds)
        bench_process_cpu(processes, args.hpas)
        admin.close()
    finally:
        processes.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
