"""Benchmark of the supervisor: kill -9 → replacement ready, footprint at rest, cold start,
each with children forked from the zygote and as fresh interpreters (today's fallback).

Run: ``.venv/bin/python tests/bench/bench_supervisor.py [--objects 1000] [--kills 30]
[--idle 60] [--cold-starts 3] [--heartbeat-interval S]``.

1. Cold start: the daemon (``--simulate``, empty store) started in a fresh run dir until
   every child is ready, ``--cold-starts`` times with ``supervisor.zygote`` off and on,
   alternately.
2. One daemon with the zygote, ``--objects`` ECSMServices (1 replica each) all available.
   Then, for each way of starting children — fresh interpreters (the zygote stopped by
   the operator: the fallback path) and forked from the zygote — every device child is
   restarted once that way, and:

   * each of the registry and the controllers is killed with SIGKILL ``--kills`` times:
     kill → replacement ready (the registry: answers PING; a controller: its first
     liveness report with ``synced``, the informer listed every object) — p50/p99/max;
     a fresh interpreter importing the libraries and exiting is timed alongside, the floor
     under a fresh start; for forked children, the floors are a bare fork + exit of this
     process and a new registry client listing the versions of every object (what an
     informer's first sync costs by itself). On a shared machine every figure moves with
     the load average, printed with each series;
   * everything rests for ``--idle`` seconds: each process's RSS and PSS (from
     ``/proc/PID/smaps_rollup``: shared pages divided among their sharers, so a sum of
     PSS is what the processes cost together) and the CPU seconds used meanwhile, with the
     totals of the daemon without the simulator (a test double a device does not run),
     next to two floors: as many fresh interpreters that only import zmq and msgpack, and
     the same shape forked (a parent, a frozen zygote importing zmq and msgpack, and the
     children forked from it, each with a ZeroMQ context and a connected socket).

``--memory-only``: only the memory at rest of the daemon as started (children forked from
its first zygote, no kill), with both floors (about 60 s with ``--idle 12``).

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
import zmq

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
        wait(healthy(client, name, startsecs), 30, f"{name} up {startsecs}s")
        pid = row(client, name)["pid"]
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)
        after = wait(replacement(client, name, pid), timeout=30, what=f"{name} replaced")
        latencies.append((after["readyAt"] - killed_at) * 1000)
        respawns.append((after["startedAt"] - killed_at) * 1000)
    return latencies, respawns


def healthy(client: SupervisorClient, name: str, startsecs: float) -> Any:
    """Ready and up ``startsecs``: a kill now restarts at once (no backoff)."""
    def check() -> bool:
        r = row(client, name)
        return bool(r["state"] == "RUNNING" and (r["uptime"] or 0) >= startsecs + 0.05)

    return check


def interpreter_floor(runs: int) -> list[float]:
    """ms for a fresh interpreter to import the libraries every process needs and exit:
    the floor under a restart, measured at the same moment (the machine may be shared)."""
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import zmq, msgpack, logging, json"], check=True)
        out.append((time.monotonic() - t0) * 1000)
    return out


def fork_floor(runs: int) -> list[float]:
    """ms for this process to fork a child that exits at once, and to reap it: the floor
    under a forked restart (page tables copied and torn down), at the same moment."""
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        out.append((time.monotonic() - t0) * 1000)
    return out


def sync_floor(endpoint: str, runs: int) -> list[float]:
    """ms for a new registry client to connect and list the versions of every
    ECSMService, as an informer's first sync does: the floor under a controller's ready."""
    out = []
    for _ in range(runs):
        t0 = time.monotonic()
        with RegistryClient(endpoint, timeout=10) as client:
            client.list_versions("ECSMService")
        out.append((time.monotonic() - t0) * 1000)
    return out


def pss_floor(count: int) -> tuple[int, int]:
    """(sum of PSS, sum of RSS) of ``count`` fresh interpreters that import what every
    process of the daemon needs (zmq, msgpack) and sleep: the floor under the daemon's
    footprint with as many processes, measured at the same moment."""
    code = "import zmq, msgpack, logging, json, sys; print(flush=True); sys.stdin.read()"
    procs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE) for _ in range(count)]
    try:
        for p in procs:
            assert p.stdout is not None
            p.stdout.readline()  # imported
        return (sum(pss(p.pid) for p in procs),
                sum(psutil.Process(p.pid).memory_info().rss for p in procs))
    finally:
        for p in procs:
            p.kill()
            p.wait()


#: The fork floor's zygote: imports what every process needs, freezes its heap, forks
#: ``argv[2]`` children that each open a ZeroMQ context and one socket connected to the
#: parent (``argv[1]``), say their pid on it and sleep.
_FLOOR_ZYGOTE = r'''
import gc, os, sys, time, zmq, msgpack, logging, json
gc.collect()
gc.freeze()
for _ in range(int(sys.argv[2])):
    if os.fork() == 0:
        push = zmq.Context().socket(zmq.PUSH)
        push.connect(sys.argv[1])
        push.send(str(os.getpid()).encode())
        time.sleep(3600)
        os._exit(0)
sys.stdin.read()
'''
#: The fork floor's parent (as the supervisor): imports the same, binds a PULL socket,
#: starts the zygote, prints its own pid, the zygote's and the children's, then waits.
_FLOOR_PARENT = r'''
import os, subprocess, sys, tempfile, zmq, msgpack, logging, json
path = os.path.join(tempfile.mkdtemp(prefix="ea-floor-"), "sock")
pull = zmq.Context().socket(zmq.PULL)
pull.bind("ipc://" + path)
zygote = subprocess.Popen([sys.executable, "-c", sys.argv[2], "ipc://" + path, sys.argv[1]],
                          stdin=subprocess.PIPE)
pids = [int(pull.recv()) for _ in range(int(sys.argv[1]))]
print(os.getpid(), zygote.pid, *pids, flush=True)
sys.stdin.read()
for pid in pids:
    os.kill(pid, 9)
zygote.kill()
zygote.wait()
os.unlink(path)
os.rmdir(os.path.dirname(path))
'''


def fork_pss_floor(children: int) -> tuple[list[int], int]:
    """(PSS of each process, sum of RSS) of the smallest daemon of the same shape: a
    parent (zmq + msgpack, one bound socket), a zygote importing the same and frozen, and
    ``children`` forked from it, each with a ZeroMQ context (its two threads) and one
    connected socket. Under it, whatever the project's own code costs."""
    parent = subprocess.Popen([sys.executable, "-c", _FLOOR_PARENT, str(children),
                               _FLOOR_ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        time.sleep(0.5)  # the children's sockets connected and idle
        return ([pss(p) for p in pids], sum(psutil.Process(p).memory_info().rss for p in pids))
    finally:
        assert parent.stdin is not None
        parent.stdin.close()
        try:
            parent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            parent.kill()
            parent.wait()


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


def processes(client: SupervisorClient, daemon_pid: int) -> dict[str, psutil.Process]:
    """The supervisor, its children and the zygote's spare (forked in advance, waiting for
    an order) with its intermediate process."""
    procs = {"supervisor": psutil.Process(daemon_pid)}
    for r in client.ps():
        if r["pid"]:
            procs[r["name"]] = psutil.Process(r["pid"])
    zygote = procs.get("zygote")
    for proc in zygote.children(recursive=True) if zygote is not None else ():
        procs["spare" if proc.ppid() != zygote.pid else "spare-intermediate"] = proc
    return procs


def cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def pss(pid: int) -> int:
    """Proportional set size, bytes (``/proc/PID/smaps_rollup``)."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    return 0


def environment(run_dir: Path, startsecs: float, zygote: bool,
                heartbeat_interval: float | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update({"ECSM_ACTORS_RUN_DIR": str(run_dir), "PYTHONUNBUFFERED": "1",
                "ECSM_ACTORS_SUPERVISOR_FLAP_RESTARTS": "1000",
                "ECSM_ACTORS_SUPERVISOR_STARTSECS": str(startsecs),
                "ECSM_ACTORS_SUPERVISOR_ZYGOTE": "true" if zygote else "false",
                # room for every service (256 MiB each by default) on the three nodes
                "ECSM_ACTORS_SIMULATOR_NODE_MEMORY": str(1 << 40)})
    if heartbeat_interval is not None:
        env["ECSM_ACTORS_CONTROLLER_HEARTBEAT_INTERVAL"] = str(heartbeat_interval)
    return env


class Daemon:
    """``python -m ecsm_actors supervisor --simulate`` in a fresh run dir."""

    def __init__(self, *, zygote: bool, startsecs: float,
                 heartbeat_interval: float | None = None) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix="ea-bench-", dir="/tmp"))
        self.cfg: Config = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(self.run_dir)})
        self.log = open(self.run_dir / "bench-supervisor.log", "wb")  # noqa: SIM115
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ecsm_actors", "supervisor", "--simulate"],
            env=environment(self.run_dir, startsecs, zygote, heartbeat_interval),
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.client = SupervisorClient(self.cfg)

    def wait_ready(self) -> float:
        wait(lambda: self.client.status()["ready"], 60, "every child ready", interval=0.005)
        return time.monotonic() - self.started

    def close(self, *, keep: bool = False) -> None:
        """Stop the daemon; remove its run dir unless ``keep`` (its logs tell a failure)."""
        try:
            self.client.shutdown()
            self.proc.wait(timeout=60)
        except (ControlError, zmq.ZMQError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()
        if keep:
            print(f"(run dir kept, with the logs: {self.run_dir})", file=sys.stderr)
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def cold_starts(runs: int) -> dict[bool, list[float]]:
    out: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(runs):
        for zygote in (False, True):
            d = Daemon(zygote=zygote, startsecs=1.0)
            try:
                out[zygote].append(d.wait_ready() * 1000)
            finally:
                d.close()
    return out


def start_children_as(client: SupervisorClient, forked: bool, startsecs: float) -> None:
    """Every device child restarted once, forked (zygote running) or fresh (zygote stopped)."""
    if forked:
        client.start("zygote")
        wait(lambda: row(client, "zygote")["state"] == "RUNNING", 30, "the zygote ready")
    else:
        client.stop("zygote")
        wait(lambda: row(client, "zygote")["state"] == "STOPPED", 30, "the zygote stopped")
    for name in DEVICE_CHILDREN:
        wait(healthy(client, name, startsecs), 30, f"{name} healthy")
        pid = row(client, name)["pid"]
        os.kill(pid, signal.SIGKILL)
        wait(replacement(client, name, pid), 30, f"{name} replaced")


def line(label: str, values: list[float], base: list[float] | None = None) -> str:
    text = (f"  {label:34s} p50 {statistics.median(values):7.1f} ms   "
            f"p99 {percentile(values, 99):7.1f} ms   max {max(values):7.1f} ms")
    if base:
        text += f"   ({percentile(values, 99) / percentile(base, 99):.2f}x p99)"
    return text


def at_rest(client: SupervisorClient, daemon_pid: int, objects: int, idle: float,
            how: str) -> None:
    """Once every queue is empty, rest ``idle`` seconds; print each process's RSS, PSS and
    CPU seconds, the totals without the simulator, and both floors of the same shape."""
    wait(lambda: all((r["queue"] or 0) == 0 for r in client.ps()), 300,
         "queues empty", interval=0.5)
    procs = processes(client, daemon_pid)
    known = {pr.pid for pr in procs.values()}
    for extra in psutil.Process(daemon_pid).children(recursive=True):
        if extra.pid not in known:  # the zygote's spare and its intermediate, if any
            procs[f"(pid {extra.pid}, of {extra.ppid()})"] = extra
    start = {n: cpu(pr) for n, pr in procs.items()}
    time.sleep(idle)
    rest = {n: (pr.memory_info().rss, pss(pr.pid), cpu(pr) - start[n])
            for n, pr in procs.items()}
    print(f"\n{how}: at rest with {objects} objects, over {idle:g}s ({load()})")
    for n, (rss, ps_, used) in rest.items():
        print(f"  {n:20s} RSS {rss / MIB:6.1f} MiB   PSS {ps_ / MIB:6.1f} MiB   "
              f"CPU {used:6.2f} s")
    device = [n for n in rest if n != "simulator"]
    total = [sum(rest[n][k] for n in device) for k in range(3)]
    print(f"  {'without simulator':20s} RSS {total[0] / MIB:6.1f} MiB   "
          f"PSS {total[1] / MIB:6.1f} MiB   CPU {total[2]:6.2f} s")
    named = len([n for n in device if not n.startswith("(")])
    floor_pss, floor_rss = pss_floor(named)
    print(f"  (floor: {named} interpreters importing zmq + msgpack: "
          f"RSS {floor_rss / MIB:.1f} MiB, PSS {floor_pss / MIB:.1f} MiB; "
          f"the daemon {total[1] / floor_pss:.2f}x PSS)")
    forked, forked_rss = fork_pss_floor(named - 2)
    print(f"  (fork floor: a parent, a frozen zygote, {named - 2} children forked with "
          f"a context and a socket: RSS {forked_rss / MIB:.1f} MiB, PSS "
          f"{sum(forked) / MIB:.1f} MiB ({', '.join(f'{x / MIB:.1f}' for x in forked)}); "
          f"the daemon {total[1] / sum(forked):.2f}x PSS)")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--objects", type=int, default=1000)
    p.add_argument("--kills", type=int, default=30)
    p.add_argument("--idle", type=float, default=60.0)
    p.add_argument("--cold-starts", type=int, default=3)
    p.add_argument("--heartbeat-interval", type=float, default=None,
                   help="controllers' liveness period (default: the configured one)")
    p.add_argument("--no-compile", action="store_true",
                   help="do not compile the project's bytecode first (see the module doc)")
    p.add_argument("--quick", action="store_true",
                   help="forked children only, no cold start, no rest (about 40 s)")
    p.add_argument("--only", choices=KILLED, action="append",
                   help="kill only this child (repeatable; default: all three)")
    p.add_argument("--memory-only", action="store_true",
                   help="no cold start, no kill: the memory at rest of the daemon as started "
                        "(children forked from its first zygote), with its floors")
    args = p.parse_args()
    # The supervisor client opens a socket per request, polled every 10 ms while a child
    # restarts; on a loaded machine ZeroMQ's reaper falls behind their closes, and past
    # its default 1,023 sockets the bench died of "Too many open files".
    zmq.Context.instance().set(zmq.MAX_SOCKETS, 16384)
    if args.quick or args.memory_only:
        args.cold_starts = 0
    killed = tuple(args.only or KILLED)
    if not args.no_compile:
        package = Path(__file__).resolve().parents[2] / "ecsm_actors"
        compileall.compile_dir(package, quiet=1,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)

    if args.cold_starts:
        cold = cold_starts(args.cold_starts)
        print(f"cold start to every child ready (--simulate, empty store, "
              f"{args.cold_starts} each)")
        print(line("fresh interpreters", cold[False]))
        print(line("forked from the zygote", cold[True], cold[False]))

    startsecs = 0.3
    d = Daemon(zygote=True, startsecs=startsecs, heartbeat_interval=args.heartbeat_interval)
    failed = False
    client = d.client
    try:
        print(f"\ndaemon ready in {d.wait_ready():.2f}s (run dir {d.run_dir})")
        registry = RegistryClient(d.cfg.registry_endpoint, timeout=10)
        t0 = time.monotonic()
        for i in range(args.objects):
            registry.create(service(i))
        print(f"created {args.objects} ECSMServices in {time.monotonic() - t0:.2f}s")

        def available() -> bool:
            items = registry.list("ECSMService").items
            return all((o.get("status") or {}).get("availableReplicas") == 1 for o in items)

        wait(available, 600, "every ECSMService available", interval=1.0)
        print(f"all available after {time.monotonic() - t0:.1f}s")
        registry.close()
        if args.memory_only:
            at_rest(client, d.proc.pid, args.objects, args.idle, "forked from the zygote")
            return 0

        hb = args.heartbeat_interval if args.heartbeat_interval is not None else (
            load_config(environ={}).controller.heartbeat_interval)
        kills: dict[tuple[bool, str], list[float]] = {}
        for forked in (True,) if args.quick else (False, True):
            how = "forked from the zygote" if forked else "fresh interpreters"
            start_children_as(client, forked, startsecs)
            print(f"\n{how}: kill -9 → replacement ready ({args.kills} kills each, "
                  f"{args.objects} objects, liveness period {hb:g}s; {load()})")
            if not forked:
                print(line("(floor: python + libs, exit)", interpreter_floor(args.kills)))
            else:
                print(line("(floor: fork + exit, reaped)", fork_floor(args.kills)))
                print(line("(floor: connect + list versions)",
                           sync_floor(d.cfg.registry_endpoint, args.kills)))
            for name in killed:
                lat, respawn = measure_kills(client, name, args.kills, startsecs)
                kills[(forked, name)] = lat
                print(line(f"{name} ready", lat, kills.get((False, name)) if forked else None))
                print(line(f"{name} spawned", respawn))

            print(f"  ({load()})")
            if args.quick:
                continue
            at_rest(client, d.proc.pid, args.objects, args.idle, how)
    except SystemExit:
        failed = True
        raise
    finally:
        d.close(keep=failed)
    return 0


#: Killed and measured, in this order; the device's children (memory totals) besides.
KILLED = ("registry", "service-controller", "hpa-controller")
DEVICE_CHILDREN = KILLED


if __name__ == "__main__":
    sys.exit(main())
