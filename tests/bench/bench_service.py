"""Benchmark of the service controller (not collected by pytest).

Run: ``.venv/bin/python tests/bench/bench_service.py [--counts 100,1000] [--workers 2]``.
For each count N it starts a fresh stack (ECSM simulator with 10 nodes, registry,
``controller service``), applies N ECSMServices at once (Dynamic, 1 replica) and prints:

* convergence time: from the first apply until every object is Available with its
  rollout complete (status written by the controller, checked against the simulator);
* reconciles/s while converging and in steady state (outcome lines of the controller's
  log, one per reconcile);
* ECSM calls per steady-state reconcile (the simulator's request counter over a window,
  minus the benchmark's own admin calls, divided by the reconciles in that window).

The idle figure (``--idle SECONDS``, 0 by default: skipped; ``--idle-only`` runs only it):
the whole daemon (``supervisor --simulate``, zygote on, controller defaults: drift_interval
10 s) with ``--idle-services`` ECSMServices (1,000 by default) all Available, left alone one
drift interval plus 2 s, then measured over SECONDS: the CPU seconds per minute used by
the daemon's processes without the simulator (a test double a device does not run), and
ECSM requests per drift interval (the simulator's request counter, our two reads
subtracted). Targets: <= 0.6 CPU-s/min, <= 30 ECSM requests per drift interval.

Then the outage figure (``--outage SECONDS``, 30 by default; ``--outage 0`` skips it;
``--outage-only`` runs only it): 1,000 ECSMServices at the controller's default settings
(drift_interval 10 s, backoff 0.05–30 s, retry budget ``controller.retry_qps`` /
``retry_burst``), then ECSM goes down (a partition: every request is dropped unanswered)
for SECONDS and comes back. It prints ECSM requests per second before and during the
outage (the simulator's request counter polled at 10 Hz, the polls themselves
subtracted) with the peak second, the retry budget the controller reported (liveness
reports read on the heartbeat socket) when ECSM came back, and the time from ECSM's
return until every service was reconciled successfully again and is Available without a
Degraded condition (outcome lines of the controller's log, then the registry). Targets:
peak ≤ retry_qps + retry_burst per second; recovery ≤ 2 s plus the retry delay pending
when ECSM came back.
"""

from __future__ import annotations

import argparse
import calendar
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import zmq  # noqa: E402

from ecsm_actors import protocol  # noqa: E402
from tests import service_harness as h  # noqa: E402
from tests.helpers import Processes, wait_until  # noqa: E402


def reconciles(run_dir: Path) -> int:
    total = 0
    for path in (run_dir / "test-logs").glob("controller-service*.log"):
        total += sum(1 for line in path.read_text(errors="replace").splitlines()
                     if " result=" in line and "key=" in line)
    return total


def available(stack: h.Stack) -> int:
    items = stack.registry.list("ECSMService", "default").items
    return sum(1 for obj in items if _done(obj))


def _done(obj: dict) -> bool:
    status = obj.get("status") or {}
    conds = {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or ()}
    return (status.get("observedGeneration") == obj["metadata"].get("generation")
            and conds.get("Available", ("",))[0] == "True"
            and conds.get("Progressing") == ("True", "NewRevisionAvailable"))


def run(count: int, workers: int, drift: float, window: float) -> dict[str, float]:
    run_dir = Path(tempfile.mkdtemp(prefix="ea-bsv-", dir="/tmp"))
    run_dir.chmod(0o700)
    procs = Processes(run_dir)
    try:
        stack = h.start_stack(procs, nodes=10, start_delay=0.05, controller=True,
                              node_memory="1Ti",
                              ECSM_ACTORS_CONTROLLER_WORKERS=str(workers),
                              ECSM_ACTORS_SERVICE_DRIFT_INTERVAL=str(drift),
                              ECSM_ACTORS_SERVICE_POLL_INTERVAL="0.2",
                              ECSM_ACTORS_SERVICE_NODE_REFRESH_INTERVAL="5",
                              ECSM_ACTORS_LOG_LEVEL="INFO")
        pool = [f"node-{i}" for i in range(1, 11)]
        time.sleep(1.0)  # the controller's informer has listed the empty registry
        start = time.perf_counter()
        for i in range(count):
            stack.registry.apply(h.service(f"s{i:04d}", replicas=1, pool=pool))
        applied = time.perf_counter() - start
        wait_until(lambda: available(stack) == count, timeout=120 + count * 0.5,
                   interval=0.25, what=f"{count} services Available")
        converged = time.perf_counter() - start
        busy = reconciles(run_dir)

        # steady state: wait for the post-convergence rechecks to spread out
        time.sleep(drift * 1.5)
        before_req = stack.admin.state()["stats"]["requests"]
        before_rec = reconciles(run_dir)
        t0 = time.perf_counter()
        time.sleep(window)
        elapsed = time.perf_counter() - t0
        after_req = stack.admin.state()["stats"]["requests"]
        after_rec = reconciles(run_dir)
        steady = after_rec - before_rec
        ecsm_calls = after_req - before_req - 1  # minus the second state() call
        stack.close()
        return {"count": count, "apply_s": applied, "converge_s": converged,
                "converge_reconciles_per_s": busy / converged,
                "steady_reconciles_per_s": steady / elapsed,
                "ecsm_calls_per_steady_reconcile": ecsm_calls / max(1, steady)}
    finally:
        procs.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


# -- the idle figure --------------------------------------------------------------------

def idle(count: int, window: float) -> dict[str, Any]:
    import json

    from ecsm_actors.config import load_config
    from ecsm_actors.ecsm.simulator.admin import SimulatorAdmin
    from ecsm_actors.registry.client import RegistryClient
    from tests.bench.bench_supervisor import Daemon, cpu, processes, service, wait

    drift = load_config(environ={}).service.drift_interval
    d = Daemon(zygote=True, startsecs=0.3)
    try:
        d.wait_ready()
        registry = RegistryClient(d.cfg.registry_endpoint, timeout=10)
        t0 = time.monotonic()
        for i in range(count):
            registry.create(service(i))

        def all_available() -> bool:
            items = registry.list("ECSMService").items
            return len(items) == count and all(
                (o.get("status") or {}).get("availableReplicas") == 1 for o in items)

        wait(all_available, 600, "every ECSMService available", interval=1.0)
        converged = time.monotonic() - t0
        registry.close()
        admin = SimulatorAdmin(json.loads(d.cfg.ecsm_address_file.read_text())["url"])
        wait(lambda: all((r["queue"] or 0) == 0 for r in d.client.ps()), 300,
             "queues empty", interval=0.5)
        time.sleep(drift + 2.0)  # the passes of the convergence are over
        procs = processes(d.client, d.proc.pid)
        cpu0 = {n: cpu(pr) for n, pr in procs.items()}
        req0 = admin.health()["requests"]
        t1 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t1
        req1 = admin.health()["requests"]
        used = {n: cpu(pr) - cpu0[n] for n, pr in procs.items()}
        admin.close()
        daemon = {n: u for n, u in used.items() if n != "simulator"}
        return {"count": count, "converged_s": converged, "window": elapsed,
                "drift": drift, "cpu_per_min": sum(daemon.values()) * 60 / elapsed,
                "by_process": {n: u * 60 / elapsed for n, u in daemon.items()},
                "ecsm_per_drift": (req1 - req0 - 1) * drift / elapsed}
    finally:
        d.close()


def print_idle(r: dict[str, Any]) -> None:
    print(f"  idle with {r['count']} services (all Available after {r['converged_s']:.0f}s), "
          f"over {r['window']:.0f}s: daemon without simulator {r['cpu_per_min']:.2f} "
          f"CPU-s/min [target <= 0.6]; ECSM {r['ecsm_per_drift']:.1f} requests per "
          f"{r['drift']:g}s drift interval [target <= 30]")
    print("    CPU-s/min by process: " + ", ".join(
        f"{n} {v:.2f}" for n, v in sorted(r["by_process"].items())))


# -- the outage figure ------------------------------------------------------------------

_OUTCOME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3}) .* "
                      r"key=(\S+) result=(requeue_after=|done|requeue |error )")


class OutcomeLog:
    """Reads the controller's log as it grows: when each key last reconciled successfully,
    and every failed reconcile (one ECSM request each: the first call fails)."""

    def __init__(self, run_dir: Path) -> None:
        self.paths = sorted((run_dir / "test-logs").glob("controller-service*.log"))
        self.offsets = {p: 0 for p in self.paths}
        self.last_success: dict[str, float] = {}
        self.failures: list[tuple[float, str]] = []

    def read(self) -> None:
        for path in self.paths:
            with path.open("rb") as f:
                f.seek(self.offsets[path])
                data = f.read()
            end = data.rfind(b"\n") + 1  # a line being written waits for the next read
            self.offsets[path] += end
            for line in data[:end].decode(errors="replace").splitlines():
                m = _OUTCOME.match(line)
                if m:
                    ts = calendar.timegm(time.strptime(m[1], "%Y-%m-%dT%H:%M:%S"))
                    ts += int(m[2]) / 1000
                    if m[4] in ("requeue_after=", "done"):
                        self.last_success[m[3]] = ts
                    else:
                        self.failures.append((ts, m[3]))

    def recovered_since(self, t: float) -> int:
        return sum(1 for ts in self.last_success.values() if ts >= t)

    def failed_keys_recovered(self, since: float, up: float) -> bool:
        """Every key that failed after ``since`` reconciled successfully after ``up``
        (settled keys left to a periodic sweep are never reconciled in an outage)."""
        failed = {key for ts, key in self.failures if ts >= since}
        return all(self.last_success.get(key, 0.0) >= up for key in failed)

    def failures_per_second(self, start: float, end: float) -> tuple[list[int], list[int]]:
        """Per whole second of [start, end): (first failures of a key — its periodic
        re-check coming due —, retries of keys that had already failed)."""
        seconds = int(end - start)
        first, retries = [0] * seconds, [0] * seconds
        seen: set[str] = set()
        for ts, key in sorted(self.failures):
            i = int(ts - start)
            if 0 <= i < seconds:
                (retries if key in seen else first)[i] += 1
            if ts >= start:
                seen.add(key)
        return first, retries


class LivenessListener:
    """Binds the heartbeat socket the controller reports to (no supervisor here)."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.bind(endpoint)
        self.latest: dict[str, Any] = {}

    def drain(self) -> dict[str, Any]:
        while self.sock.poll(0):
            self.latest = protocol.decode_liveness(self.sock.recv()).stats
        return self.latest

    def close(self) -> None:
        self.sock.close()
        self.ctx.term()


def healthy(obj: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or ()}
    return conds.get("Available") == "True" and conds.get("Degraded") != "True"


def per_second(samples: list[tuple[float, int]], start: float, end: float) -> list[int]:
    """ECSM requests in each whole second of [start, end), minus our own polls."""
    out = []
    t = start
    while t + 1.0 <= end + 1e-9:
        inside = [(ts, n) for ts, n in samples if t <= ts < t + 1.0]
        before = [(ts, n) for ts, n in samples if ts < t]
        if inside and before:
            polls = len(inside)
            out.append(inside[-1][1] - before[-1][1] - polls)
        t += 1.0
    return out


def outage(count: int, workers: int, down: float, retry_qps: float | None,
           retry_burst: int | None) -> dict[str, Any]:
    run_dir = Path(tempfile.mkdtemp(prefix="ea-bso-", dir="/tmp"))
    run_dir.chmod(0o700)
    procs = Processes(run_dir)
    env = {"ECSM_ACTORS_CONTROLLER_WORKERS": str(workers),
           # the controller's defaults, over the harness's fast test settings
           "ECSM_ACTORS_SERVICE_DRIFT_INTERVAL": "10",
           "ECSM_ACTORS_SERVICE_NODE_REFRESH_INTERVAL": "5",
           "ECSM_ACTORS_CONTROLLER_BACKOFF_CAP": "30",
           "ECSM_ACTORS_LOG_LEVEL": "INFO"}
    if retry_qps is not None:
        env["ECSM_ACTORS_CONTROLLER_RETRY_QPS"] = str(retry_qps)
    if retry_burst is not None:
        env["ECSM_ACTORS_CONTROLLER_RETRY_BURST"] = str(retry_burst)
    listener = LivenessListener(h.config(run_dir).heartbeat_endpoint)
    try:
        stack = h.start_stack(procs, nodes=10, start_delay=0.05, controller=True,
                                node_memory="1Ti", **env)
        pool = [f"node-{i}" for i in range(1, 11)]
        time.sleep(1.0)  # the controller's informer has listed the empty registry
        for i in range(count):
            stack.registry.apply(h.service(f"s{i:04d}", replicas=1, pool=pool))
        wait_until(lambda: available(stack) == count, timeout=120 + count * 0.5,
                   interval=0.5, what=f"{count} services Available")
        time.sleep(12.0)  # one drift interval: the periodic re-checks spread out

        samples: list[tuple[float, int]] = []

        def poll_until(deadline: float) -> None:
            while time.monotonic() < deadline:
                samples.append((time.monotonic(), stack.admin.health()["requests"]))
                time.sleep(0.1)

        t_base = time.monotonic()
        poll_until(t_base + 5.0)
        stack.admin.faults(partition=True)
        t_down = time.monotonic()
        wall_down = time.time()
        poll_until(t_down + down)
        budget_before = listener.drain().get("retry_budget", {})
        stack.admin.reset_faults()
        t_up = time.monotonic()
        wall_up = time.time()
        time.sleep(0.6)  # one liveness report (0.5 s) after ECSM came back
        budget = listener.drain().get("retry_budget", {}) or budget_before

        log = OutcomeLog(run_dir)

        def all_recovered() -> bool:
            log.read()
            return log.failed_keys_recovered(wall_down, wall_up)

        wait_until(all_recovered, timeout=600, interval=0.2,
                   what="every service that failed reconciled after ECSM came back")
        reconciled = max([0.0, *(ts - wall_up for ts in log.last_success.values())])
        failed_keys = len({key for ts, key in log.failures if ts >= wall_down})
        sweep = listener.drain().get("sweep", {})
        wait_until(lambda: sum(1 for o in stack.registry.list(h.KIND, "default").items
                               if healthy(o)) == count,
                   timeout=120, interval=0.5, what="every service Available, not Degraded")
        healthy_after = time.monotonic() - t_up
        base = per_second(samples, t_base, t_down)
        during = per_second(samples, t_down, t_up)
        first, retries = log.failures_per_second(wall_down, wall_up)
        stack.close()
        return {"count": count, "down": down, "baseline": sum(base) / max(1, len(base)),
                "per_second": during, "peak": max(during), "peak_at": during.index(max(during)),
                "first": first, "retries": retries, "retry_peak": max(retries),
                "budget": budget, "reconciled_s": reconciled, "healthy_s": healthy_after,
                "failed_keys": failed_keys, "sweep": sweep}
    finally:
        listener.close()
        procs.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


def print_outage(r: dict[str, Any]) -> None:
    b = r["budget"]
    qps, burst = b.get("qps", 0), b.get("burst", 0)
    wait = b.get("wait", 0.0)
    print(f"  ECSM down {r['down']:.0f}s with {r['count']} services: "
          f"{r['baseline']:.0f} requests/s before (periodic re-checks); during the outage "
          f"peak {r['peak']}/s (second {r['peak_at']}), of which retries peak "
          f"{r['retry_peak']}/s [target <= retry_qps + burst = {qps:g} + {burst} = "
          f"{qps + burst:g}/s]")
    print(f"    ECSM requests per second during the outage: {r['per_second']}")
    print(f"    of which first failures (re-checks coming due): {r['first']}")
    print(f"    of which retries: {r['retries']}")
    print(f"    retry budget when ECSM came back: tokens {b.get('tokens')}, next retry waits "
          f"{wait:.1f}s, {b.get('reservations')} reservations, {b.get('delayed')} delayed")
    if r["sweep"]:
        print(f"    drift sweep: {r['sweep'].get('sweep_failures')} failed sweeps (said once), "
              f"{r['failed_keys']} services failed a reconcile during the outage")
    print(f"    after ECSM came back: every failed service reconciled in "
          f"{r['reconciled_s']:.1f}s, "
          f"all Available and not Degraded in {r['healthy_s']:.1f}s "
          f"[target <= 2 s + the pending retry delay = {2 + wait:.1f}s]")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="100,1000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--drift", type=float, default=5.0,
                        help="service.drift_interval of the controller, seconds")
    parser.add_argument("--window", type=float, default=10.0,
                        help="steady-state measuring window, seconds")
    parser.add_argument("--outage", type=float, default=30.0,
                        help="seconds ECSM is down for the outage figure (0: skip it)")
    parser.add_argument("--outage-only", action="store_true")
    parser.add_argument("--idle", type=float, default=0.0,
                        help="seconds of the idle measurement of the whole daemon (0: skip)")
    parser.add_argument("--idle-only", action="store_true")
    parser.add_argument("--idle-services", type=int, default=1000)
    parser.add_argument("--outage-services", type=int, default=1000)
    parser.add_argument("--retry-qps", type=float, default=None,
                        help="controller.retry_qps for the outage figure (default: its default)")
    parser.add_argument("--retry-burst", type=int, default=None)
    args = parser.parse_args()
    if args.idle > 0 or args.idle_only:
        print("idle: the whole daemon (supervisor --simulate, zygote), controller defaults")
        print_idle(idle(args.idle_services, args.idle or 30.0))
        if args.idle_only:
            return
    if not args.outage_only:
        print(f"service controller: workers={args.workers} drift_interval={args.drift}s "
              f"(10 simulated nodes, 1 replica per service)")
        for count in (int(c) for c in args.counts.split(",")):
            r = run(count, args.workers, args.drift, args.window)
            print(f"  {count:5d} services: applied in {r['apply_s']:.2f}s, all Available "
                  f"after {r['converge_s']:.2f}s; {r['converge_reconciles_per_s']:.0f} "
                  f"reconciles/s converging, {r['steady_reconciles_per_s']:.0f} reconciles/s "
                  f"steady; {r['ecsm_calls_per_steady_reconcile']:.2f} ECSM calls per "
                  f"steady reconcile")
    if args.outage > 0:
        print(f"ECSM outage: workers={args.workers}, controller defaults otherwise")
        print_outage(outage(args.outage_services, args.workers, args.outage, args.retry_qps,
                            args.retry_burst))


if __name__ == "__main__":
    main()
