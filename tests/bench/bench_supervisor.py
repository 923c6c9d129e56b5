"""Benchmark of the supervisor: controller kill -9 → replacement ready, footprint at rest.

Run: ``.venv/bin/python tests/bench/bench_supervisor.py [--objects 1000] [--kills 30]
[--idle 60] [--heartbeat-interval S]``. Starts the real daemon with ``--simulate`` in a
fresh run dir, creates ``--objects`` ECSMServices (1 replica each) and waits until they
are all available, then:

1. kills each controller with SIGKILL ``--kills`` times and measures kill → replacement
   ready (the supervisor's readiness for a controller is its first liveness report with
   ``synced``: the informer listed every object) — p50/p99/max; first it times a fresh
   interpreter importing the libraries and exiting, the floor under any restart, measured
   at the same moment with the load average (on a shared machine both move together);
2. lets everything rest for ``--idle`` seconds and reports each process's RSS and the CPU
   seconds each used meanwhile, and the totals of the whole daemon (also without the
   simulator, a test double that a device does not run).

Bytecode: an installed package has its modules compiled (``pip install`` does it), but this
checkout may run with ``PYTHONDONTWRITEBYTECODE=1``, where every process start would compile
every module of the project from source (≈ 30 ms per controller start). So the benchmark
compiles ``ecsm_actors`` first, with hash-checked ``.pyc`` files (a source edited since is
recompiled in memory, never served stale); ``--no-compile`` measures without.

Prints the figures; exits non-zero only when the daemon cannot be brought up.
"""

from __future__ import annotations

import argparse
import compileall
import os
import py_compile
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from ecsm_actors.config import Config, load_config
from ecsm_actors.errors import ControlError, RegistryError
from ecsm_actors.registry.client import RegistryClient
from ecsm_actors.supervisor.client import SupervisorClient

CONTROLLERS = ("service-controller", "hpa-controller")
MIB = 1 << 20


def wait(pred: Any, timeout: float, what: str, interval: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = pred()
        except (ControlError, RegistryError):
            value = None
        if value:
            return value
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}")


def service(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
        "metadata": {"name": f"bench-{i:04d}", "namespace": "default"},
        "spec": {"deploymentStrategy": {"type": "Dynamic", "replicas": 1,
                                        "nodePool": ["node-1", "node-2", "node-3"]},
                 "template": {"image": "app@1.0#sylixos"}},
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def row(client: SupervisorClient, name: str) -> dict[str, Any]:
    return next(r for r in client.ps() if r["name"] == name)


def replacement(client: SupervisorClient, name: str, old_pid: int) -> Any:
    def check() -> dict[str, Any] | None:
        r = row(client, name)
        return r if r["state"] == "RUNNING" and r["pid"] != old_pid else None

    return check


def measure_kills(client: SupervisorClient, name: str, kills: int,
                  startsecs: float) -> tuple[list[float], list[float]]:
    """(kill → replacement ready, kill → replacement spawned) in ms, per kill."""
    latencies, respawns = [], []
    for _ in range(kills):
        before = row(client, name)
        pid = before["pid"]
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        after = wait(replacement(client, name, pid), timeout=30, what=f"{name} replaced")
        latencies.append((after["readyAt"] - killed_at) * 1000)
        respawns.append((after["startedAt"] - killed_at) * 1000)
        time.sleep(startsecs + 0.2)  # a healthy run: the next kill restarts at once
    return latencies, respawns


def interpreter_floor(runs: int) -> list[float]:
    """ms for a fresh interpreter to import the libraries every process needs and exit:
    the floor under a restart, measured at the same moment (the machine may be shared)."""
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import zmq, msgpack, logging, json"], check=True)
        out.append((time.monotonic() - t0) * 1000)
    return out


def processes(client: SupervisorClient, daemon_pid: int) -> dict[str, psutil.Process]:
    procs = {"supervisor": psutil.Process(daemon_pid)}
    for r in client.ps():
        if r["pid"]:
            procs[r["name"]] = psutil.Process(r["pid"])
    return procs


def cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--objects", type=int, default=1000)
    p.add_argument("--kills", type=int, default=30)
    p.add_argument("--idle", type=float, default=60.0)
    p.add_argument("--heartbeat-interval", type=float, default=None,
                   help="controllers' liveness period (default: the configured one)")
    p.add_argument("--no-compile", action="store_true",
                   help="do not compile the project's bytecode first (see the module doc)")
    args = p.parse_args()
    if not args.no_compile:
        package = Path(__file__).resolve().parents[2] / "ecsm_actors"
        compileall.compile_dir(package, quiet=1,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)

    run_dir = Path(tempfile.mkdtemp(prefix="ea-bench-", dir="/tmp"))
    startsecs = 0.5
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update({"ECSM_ACTORS_RUN_DIR": str(run_dir), "PYTHONUNBUFFERED": "1",
                "ECSM_ACTORS_SUPERVISOR_FLAP_RESTARTS": "1000",
                "ECSM_ACTORS_SUPERVISOR_STARTSECS": str(startsecs)})
    if args.heartbeat_interval is not None:
        env["ECSM_ACTORS_CONTROLLER_HEARTBEAT_INTERVAL"] = str(args.heartbeat_interval)
    cfg: Config = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)})
    log = open(run_dir / "bench-supervisor.log", "wb")  # noqa: SIM115
    daemon = subprocess.Popen([sys.executable, "-m", "ecsm_actors", "supervisor", "--simulate"],
                              env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    client = SupervisorClient(cfg)
    try:
        t0 = time.monotonic()
        wait(lambda: client.status()["ready"], 60, "every child ready", interval=0.02)
        print(f"daemon ready in {time.monotonic() - t0:.2f}s (run dir {run_dir})")
        registry = RegistryClient(cfg.registry_endpoint, timeout=10)
        t0 = time.monotonic()
        for i in range(args.objects):
            registry.create(service(i))
        print(f"created {args.objects} ECSMServices in {time.monotonic() - t0:.2f}s")

        def available() -> bool:
            items = registry.list("ECSMService").items
            return all((o.get("status") or {}).get("availableReplicas") == 1 for o in items)

        wait(available, 600, "every ECSMService available", interval=1.0)
        print(f"all available after {time.monotonic() - t0:.1f}s")

        hb = args.heartbeat_interval if args.heartbeat_interval is not None else (
            load_config(environ={}).controller.heartbeat_interval)
        print(f"\nkill -9 → replacement ready and synced ({args.kills} kills each, "
              f"liveness period {hb:g}s)")
        floor = interpreter_floor(args.kills)
        print(f"  {'(floor: python + libs)':20s} ready    p50 {statistics.median(floor):7.1f} ms   "
              f"p99 {percentile(floor, 99):7.1f} ms   max {max(floor):7.1f} ms   "
              f"(load average {os.getloadavg()[0]:.2f})")
        for name in CONTROLLERS:
            lat, respawn = measure_kills(client, name, args.kills, startsecs)
            print(f"  {name:20s} ready    p50 {statistics.median(lat):7.1f} ms   "
                  f"p99 {percentile(lat, 99):7.1f} ms   max {max(lat):7.1f} ms")
            print(f"  {'':20s} respawn  p50 {statistics.median(respawn):7.1f} ms   "
                  f"p99 {percentile(respawn, 99):7.1f} ms   max {max(respawn):7.1f} ms")

        wait(lambda: all((r["queue"] or 0) == 0 for r in client.ps()), 300, "queues empty",
             interval=0.5)
        procs = processes(client, daemon.pid)
        start = {n: cpu(pr) for n, pr in procs.items()}
        time.sleep(args.idle)
        print(f"\nat rest with {args.objects} objects, over {args.idle:g}s")
        rss = {n: pr.memory_info().rss for n, pr in procs.items()}
        used = {n: cpu(pr) - start[n] for n, pr in procs.items()}
        for n in procs:
            print(f"  {n:20s} RSS {rss[n] / MIB:6.1f} MiB   CPU {used[n]:6.2f} s")
        print(f"  {'whole daemon':20s} RSS {sum(rss.values()) / MIB:6.1f} MiB   "
              f"CPU {sum(used.values()):6.2f} s")
        device = [n for n in procs if n != "simulator"]
        print(f"  {'without simulator':20s} RSS {sum(rss[n] for n in device) / MIB:6.1f} MiB   "
              f"CPU {sum(used[n] for n in device):6.2f} s")
        registry.close()
    finally:
        try:
            client.shutdown()
            daemon.wait(timeout=60)
        except (ControlError, subprocess.TimeoutExpired):
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        log.close()
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
