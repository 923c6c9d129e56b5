"""Active/standby controllers on a real 3-member etcd cluster: two ``noop`` controller
processes of one kind on one prefix (a real LMDB registry holds the objects; only the
election goes to etcd). Exactly one reconciles, and ``ecsm-operator ps`` shows the role
of the supervised one; a ``kill -9`` of the leader lets the other lead within lease
duration + 1 s, and ``ecsm-operator stats`` names it as the lease holder; a leader cut off
from etcd stops reconciling before its lease can expire, so no reconcile of the two
overlaps.

Short election settings: lease 2 s, renew deadline 1.5 s, retry period 0.25 s."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from ecsm_actors.supervisor.client import SupervisorClient
from tests import noop_harness as h
from tests.etcd_cluster import EtcdCluster
from tests.helpers import Processes, wait_until
from tests.registry_samples import service, with_changes

pytestmark = pytest.mark.timeout(90)

LEASE, RENEW, RETRY = 2.0, 1.5, 0.25
OPERATOR = str(Path(sys.executable).parent / "ecsm-operator")


def election_env(endpoints: list[str], prefix: str) -> dict[str, str]:
    """The settings of a controller that elects on etcd (its objects stay in LMDB)."""
    return {"ECSM_ACTORS_STORE_BACKEND": "etcd",
            "ECSM_ACTORS_STORE_ETCD_ENDPOINTS": ",".join(endpoints),
            "ECSM_ACTORS_STORE_ETCD_PREFIX": prefix,
            "ECSM_ACTORS_STORE_ETCD_DIAL_TIMEOUT": "0.3",
            "ECSM_ACTORS_STORE_ETCD_REQUEST_TIMEOUT": "1.0",
            "ECSM_ACTORS_CONTROLLER_LEASE_DURATION": str(LEASE),
            "ECSM_ACTORS_CONTROLLER_RENEW_DEADLINE": str(RENEW),
            "ECSM_ACTORS_CONTROLLER_RETRY_PERIOD": str(RETRY)}


def start_candidate(processes: Processes, name: str, endpoints: list[str], prefix: str,
                    *, run_dir: Path | None = None) -> tuple[subprocess.Popen[bytes], Path]:
    """A ``noop`` controller electing on etcd; returns it and its reconcile record. With
    ``run_dir``, it runs as another operator instance would (its own run dir), on the
    test's registry."""
    record = processes.run_dir / f"record-{name}.log"
    other = {} if run_dir is None else {
        "ECSM_ACTORS_RUN_DIR": str(run_dir),
        "ECSM_ACTORS_REGISTRY_ENDPOINT": h.config(processes.run_dir).registry_endpoint,
        "ECSM_ACTORS_REGISTRY_EVENTS_ENDPOINT": h.config(processes.run_dir).events_endpoint}
    proc = h.start_noop(processes, ECSM_ACTORS_NOOP_RECORD=str(record),
                        ECSM_ACTORS_NOOP_STATUS="0", **election_env(endpoints, prefix), **other)
    return proc, record


def operator(run_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """``ecsm-operator ARGS`` against the run dir's supervisor; its stdout."""
    done = subprocess.run([OPERATOR, *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "ECSM_ACTORS_RUN_DIR": str(run_dir), **(env or {})})
    assert done.returncode == 0, done.stderr
    return done.stdout


def starts(record: Path) -> list[tuple[str, float]]:
    """(key, monotonic start) of every reconcile in a record file."""
    if not record.exists():
        return []
    out = []
    for line in record.read_text().splitlines():
        key, _, start = line.split()
        out.append((key, float(start)))
    return out


def log_of(processes: Processes, proc: subprocess.Popen[bytes]) -> str:
    index = processes.children.index(proc)
    path = next((processes.run_dir / "test-logs").glob(f"*.{index}.log"))
    return path.read_text(errors="replace")


class Writer:
    """Updates one object's spec every 50 ms in a thread, so a leader always has work."""

    def __init__(self, run_dir: Path) -> None:
        self._run_dir = run_dir
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with h.client(self._run_dir) as c:
            obj = c.create(service("busy", replicas=1))
            n = 0
            while not self._stop.wait(0.05):
                n += 1
                change = with_changes(obj, spec__deploymentStrategy__replicas=n % 9 + 1)
                change["metadata"].pop("resourceVersion", None)
                c.update(change)

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_one_of_two_controllers_reconciles_and_the_other_leads_within_a_lease_after_a_kill_9(
        processes: Processes, run_dir: Path, etcd_cluster: EtcdCluster,
        etcd_prefix: str) -> None:
    # The first candidate leads: it takes the lease before the registry is even up. It runs
    # as another operator instance (run dir) would: its successor waits for its lease.
    first, first_record = start_candidate(processes, "first", etcd_cluster.endpoints,
                                          etcd_prefix, run_dir=run_dir / "b")
    wait_until(lambda: "noop-controller: leading" in log_of(processes, first), timeout=20,
               what="the first one leading")
    # The second runs under a supervisor, which shows its role in ps.
    second_record = run_dir / "record-second.log"
    election = election_env(etcd_cluster.endpoints, etcd_prefix)
    table = run_dir / "children.json"
    table.write_text(json.dumps([
        {"name": "registry", "argv": [sys.executable, "-m", "ecsm_actors", "registry"],
         "readiness": {"kind": "registry-ping", "endpoint": h.config(run_dir).registry_endpoint}},
        {"name": "noop-controller", "depends_on": ["registry"],
         "argv": [sys.executable, "-m", "ecsm_actors", "controller", "noop"],
         "env": {**election, "ECSM_ACTORS_NOOP_RECORD": str(second_record),
                 "ECSM_ACTORS_NOOP_STATUS": "0"},
         "readiness": {"kind": "liveness", "stat": "synced"}}]))
    processes.spawn("supervisor", "--children", str(table), log_name="supervisor")
    supervisor = SupervisorClient(h.config(run_dir), timeout=5)
    wait_until(lambda: supervisor.status()["ready"], timeout=20, what="every child ready")
    ps = operator(run_dir, "ps").splitlines()
    assert ps[0].split()[-1] == "ROLE"
    assert {line.split()[0]: line.split()[-1] for line in ps[1:]} == {
        "registry": "-", "noop-controller": "standby"}

    with h.client(run_dir) as c:
        for i in range(20):
            c.create(service(f"svc-{i:02d}", replicas=1))
        wait_until(lambda: {f"default/svc-{i:02d}" for i in range(20)}
                   <= {k for k, _ in starts(first_record)}, timeout=20,
                   what="the leader reconciling every object")
    assert starts(second_record) == []  # the standby reconciled nothing

    killed = time.monotonic()
    processes.kill(first)
    wait_until(lambda: starts(second_record), timeout=LEASE + 5, interval=0.01,
               what="the standby leading")
    failover = min(t for _, t in starts(second_record)) - killed
    print(f"failover after kill -9: {failover:.2f} s (lease {LEASE:g} s)")
    assert failover <= LEASE + 1.0
    wait_until(lambda: {f"default/svc-{i:02d}" for i in range(20)}
               <= {k for k, _ in starts(second_record)}, timeout=20,
               what="the new leader reconciling every object")
    row = wait_until(lambda: next(r for r in supervisor.ps() if r["name"] == "noop-controller"
                                  and r["role"] == "leader"), what="ps showing the new leader")
    leases = yaml.safe_load(operator(run_dir, "stats", "noop-controller", env=election))
    holder = leases["leases"]["noop-controller"]
    assert holder["holder"] == f"{socket.gethostname()}:{run_dir}:{row['pid']}"
    assert 0 <= holder["age"] < 10

    # Killed again, the supervisor restarts it in place: the new process takes the lease
    # of its dead predecessor at once instead of waiting for it to expire.
    before = len(starts(second_record))
    killed = time.monotonic()
    os.kill(row["pid"], signal.SIGKILL)
    wait_until(lambda: len(starts(second_record)) > before, timeout=LEASE + 10,
               interval=0.01, what="the restarted controller reconciling")
    back = min(t for _, t in starts(second_record)[before:]) - killed
    print(f"restarted in place after kill -9: reconciling again {back:.2f} s later")
    assert "a process of this computer that is gone, released" in (
        run_dir / "logs" / "noop-controller.log").read_text()


def test_a_leader_cut_off_from_etcd_stops_reconciling_before_its_lease_expires(
        processes: Processes, run_dir: Path, etcd_cluster: EtcdCluster,
        etcd_prefix: str) -> None:
    h.start_registry(processes)
    # The leader reaches etcd through one member only, not the etcd leader (whose death
    # would make etcd extend every lease); the standby through the two others.
    lonely = next(i for i in range(3) if i != etcd_cluster.leader())
    others = [u for i, u in enumerate(etcd_cluster.endpoints) if i != lonely]
    leader, leader_record = start_candidate(processes, "leader",
                                            [etcd_cluster.endpoints[lonely]], etcd_prefix)
    with Writer(run_dir):
        wait_until(lambda: starts(leader_record), timeout=20, what="the leader reconciling")
        standby, standby_record = start_candidate(processes, "standby", others, etcd_prefix)
        wait_until(lambda: "the leader is" in log_of(processes, standby), timeout=20,
                   what="the standby standing by")
        cut = time.monotonic()
        etcd_cluster.kill(lonely)
        wait_until(lambda: starts(standby_record), timeout=LEASE + 5, interval=0.01,
                   what="the standby leading")
        time.sleep(0.5)  # the standby keeps reconciling the writer's changes meanwhile
    last_of_old = max(t for _, t in starts(leader_record))
    first_of_new = min(t for _, t in starts(standby_record))
    print(f"cut off at 0: old leader's last reconcile {last_of_old - cut:+.2f} s, "
          f"new leader's first {first_of_new - cut:+.2f} s")
    assert last_of_old < cut + RENEW  # it stopped by its renew deadline...
    assert last_of_old < first_of_new  # ...before anyone else could lead: no overlap
    assert "stopped leading: no renewal within controller.renew_deadline" in log_of(
        processes, leader)
    assert leader.poll() is None  # still running, as a candidate
