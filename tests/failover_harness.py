"""Two operator hosts under faults: a standalone ECSM, a changing workload, the final judgement.

Builds on :mod:`tests.multihost_harness` (its :class:`Host` and :class:`Topology`) for the
fault tests and the failover benchmark, with one difference: the ECSM simulator runs on its
own (:func:`tests.ecsm_sim.start_simulator`), as a device's platform does, so a ``kill -9``
of either host — including the first — takes only an operator instance away, never ECSM.
Both hosts are started the same way (``ecsm-operator run --store etcd --etcd-endpoints``)
and :func:`restart` brings a killed one back in its run dir.

* :class:`Churn` — the changing workload: one drill :class:`DesiredStateWriter` per host
  (each through that host's registry, on service names of its own, every acknowledged
  write recorded in one :class:`Ledger`) and a seeded thread that creates, scales, rolls
  out and deletes services a few times a second.
* :func:`lease_holders` — which host holds each controller kind's etcd lease, read from
  etcd itself (not through ``ps``, whose role lags by a heartbeat).
* :func:`judge` — waits until the writers are idle and the system is quiescent, then
  checks the drill's invariants: every acknowledged write present, every spec on ECSM
  with no duplicate or orphaned service, statuses matching ECSM.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import Any

from ecsm_actors.drill import invariants
from ecsm_actors.drill.ledger import Ledger
from ecsm_actors.drill.snapshot import Snapshot, take
from ecsm_actors.drill.writer import DesiredStateWriter, Write
from ecsm_actors.ecsm.clientset import Clientset
from ecsm_actors.errors import EcsmActorsError, Internal, Unavailable
from ecsm_actors.etcd import EtcdClient
from ecsm_actors.registry.client import RegistryClient
from ecsm_actors.runtime.leader import read_leases
from tests.ecsm_sim import RunningSimulator
from tests.helpers import Processes, wait_until
from tests.multihost_harness import FAST, OPERATOR, Host, Topology, _run_dir
from tests.registry_samples import service

NAMESPACE = "default"
#: The simulator's images a rollout cycles through (each differs from the one before).
IMAGES = ("app@1.0#sylixos", "app@1.1#sylixos", "app@2.0#sylixos")


def start_hosts(endpoints: Sequence[str], prefix: str, simulator: RunningSimulator, *,
                timeout: float = 60, **env: str) -> Topology:
    """Hosts ``a`` and ``b`` on the etcd cluster, both reconciling against ``simulator``;
    returns once every child of both is ready. ``env``: extra settings (over :data:`FAST`)."""
    topology = Topology(endpoints=list(endpoints), prefix=prefix)
    settings = {**FAST, "ECSM_ACTORS_STORE_ETCD_PREFIX": prefix,
                "ECSM_ACTORS_ECSM_HOST": "127.0.0.1",
                "ECSM_ACTORS_ECSM_PORT": str(simulator.port), **env}
    with topology.closed_on_failure():
        for name in ("a", "b"):
            run_dir = _run_dir(name)
            host = Host(name=name, run_dir=run_dir, env=dict(settings),
                        processes=Processes(run_dir))
            topology.hosts[name] = host
            _spawn(topology, host)
        topology.wait_ready(timeout)
    return topology


def _spawn(topology: Topology, host: Host) -> None:
    host.supervisor = host.processes.spawn(
        OPERATOR, "run", "--store", "etcd", "--etcd-endpoints", ",".join(topology.endpoints),
        env=host.env, log_name="supervisor", module=False)


def restart(topology: Topology, host: Host, *, timeout: float = 60) -> None:
    """Start a killed host again in its run dir; return once every child is ready."""
    _spawn(topology, host)
    wait_until(host.ready, timeout=timeout, interval=0.1,
               what=f"every child of host {host.name} ready again")


def lease_holders(client: EtcdClient, topology: Topology) -> dict[str, str]:
    """Controller kind → the name of the host holding its lease now (absent: nobody)."""
    out: dict[str, str] = {}
    for kind, lease in read_leases(client, topology.prefix).items():
        for host in topology.hosts.values():
            if f":{host.run_dir}:" in str(lease["holder"]):
                out[kind] = host.name
    return out


class Churn:
    """The changing workload: services created, scaled, rolled out and deleted through
    both hosts (``per_host`` names each), every acknowledged write in :attr:`ledger`."""

    def __init__(self, topology: Topology, *, per_host: int = 3, period: float = 0.4,
                 seed: int = 17) -> None:
        self.ledger = Ledger()
        self.period = period
        self._random = random.Random(seed)
        self._stop = threading.Event()
        self._paused = threading.Event()
        #: Every Unavailable (or Internal) a write met: "host: op key: error".
        self.errors: list[str] = []
        self.writers = {name: DesiredStateWriter(
            _Counting(RegistryClient(host.config.registry_endpoint, timeout=2.0, deadline=4.0),
                      name, self.errors), self.ledger).start()
            for name, host in topology.hosts.items()}
        self.names = {name: [f"{name}-{i}" for i in range(per_host)] for name in self.writers}
        self._present: dict[str, int] = {}     # name -> image version, as last submitted
        self.submitted = 0
        for host, names in self.names.items():
            for name in names:
                self._create(host, name)
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)
        self._thread.start()

    @property
    def acknowledged(self) -> int:
        return self.ledger.acknowledged

    def _create(self, host: str, name: str) -> None:
        self._present[name] = 0
        self._submit(host, Write(op="create", kind="ECSMService", key=f"{NAMESPACE}/{name}",
                                 manifest=service(name, namespace=NAMESPACE, replicas=1),
                                 label="create"))

    def _submit(self, host: str, write: Write) -> None:
        self.submitted += 1
        self.writers[host].submit(write)

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            if self._paused.is_set():
                continue
            host = self._random.choice(sorted(self.names))
            name = self._random.choice(self.names[host])
            key = f"{NAMESPACE}/{name}"
            if name not in self._present:
                self._create(host, name)
                continue
            roll = self._random.random()
            if roll < 0.15:
                del self._present[name]
                self._submit(host, Write(op="delete", kind="ECSMService", key=key,
                                         label="delete"))
            elif roll < 0.4:
                self._present[name] += 1
                image = IMAGES[self._present[name] % len(IMAGES)]

                def rollout(obj: dict[str, Any], image: str = image) -> None:
                    obj["spec"]["template"]["image"] = image
                self._submit(host, Write(op="modify", kind="ECSMService", key=key,
                                         mutate=rollout, label="rollout"))
            else:
                replicas = self._random.randint(1, 3)

                def scale(obj: dict[str, Any], replicas: int = replicas) -> None:
                    obj["spec"]["deploymentStrategy"]["replicas"] = replicas
                self._submit(host, Write(op="modify", kind="ECSMService", key=key,
                                         mutate=scale, label="scale"))

    def pause(self) -> None:
        """No new changes (the ones queued are still written)."""
        self._paused.set()

    def resume(self) -> None:
        self._paused.clear()

    def wait_idle(self, timeout: float) -> None:
        for name, writer in self.writers.items():
            assert writer.wait_idle(timeout), \
                f"{writer.pending()} writes through host {name} still pending after {timeout}s"

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for writer in self.writers.values():
            writer.stop()
            writer.client.close()

    def abandoned(self) -> list[str]:
        return [w for writer in self.writers.values() for w in writer.abandoned]


class _Counting:
    """A registry client that records each Unavailable or Internal error it raises."""

    def __init__(self, client: RegistryClient, host: str, errors: list[str]) -> None:
        self._client, self._host, self._errors = client, host, errors

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return method(*args, **kwargs)
            except (Unavailable, Internal) as e:
                self._errors.append(f"{self._host}: {name} {args[1:3]}: {e}")
                raise
        return call


def snapshot(topology: Topology, simulator: RunningSimulator) -> Snapshot | None:
    """Registry (through the first host that answers) and ECSM, read together."""
    with Clientset.from_url(simulator.url, connect_timeout=2.0, read_timeout=10.0) as ecsm:
        for host in topology.hosts.values():
            try:
                with RegistryClient(host.config.registry_endpoint, timeout=3.0) as registry:
                    return take(registry, ecsm.services, time.monotonic())
            except EcsmActorsError:
                continue
    return None


def judge(topology: Topology, simulator: RunningSimulator, churn: Churn, *,
          timeout: float = 45) -> Snapshot:
    """Pause the churn, let every queued write land, wait for quiescence and assert every
    invariant: acknowledged writes present, ECSM matching every spec, no duplicate or
    orphaned ECSM service, statuses true. Returns the judged snapshot (the churn stays
    paused until :meth:`Churn.resume`)."""
    churn.pause()
    churn.wait_idle(timeout)
    assert churn.abandoned() == []
    state: dict[str, Any] = {"why": "no snapshot yet"}

    def quiescent() -> Snapshot | None:
        snap = snapshot(topology, simulator)
        if snap is None:
            state["why"] = "neither registry answered"
            return None
        ok, state["why"] = invariants.quiescent(snap)
        return snap if ok else None

    try:
        snap = wait_until(quiescent, timeout=timeout, interval=0.3,
                          what="the two hosts to converge")
    except AssertionError as e:
        raise AssertionError(f"{e}: {state['why']}") from None
    results = [invariants.check_acknowledged_writes(churn.ledger.entries(), snap),
               *invariants.convergence_checks(snap)]
    failed = [f"{r.name}: {r.violations}" for r in results if not r.ok]
    assert failed == [], failed
    return snap
