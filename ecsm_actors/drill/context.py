"""Everything one running drill shares between its threads, and the canary pool.

Runs in the drill process. :class:`DrillContext` holds the system handle, the clients of
the main thread, the writer, the ledger, the recovery tracker and the timeline clock.
:class:`CanaryPool` lends a canary ECSMService to one recovery probe at a time and picks
its next scale (1 ↔ 2), so a canary change is idempotent when retried.
:class:`LoadBook` is the CPU load the timeline asked for per HPA target (the monitor
re-applies it to whichever ECSM revision is current).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from ecsm_actors.drill.ledger import Ledger
from ecsm_actors.drill.recovery import RecoveryTracker
from ecsm_actors.drill.system import DrillSystem
from ecsm_actors.drill.workload import NAMESPACE, Workload
from ecsm_actors.drill.writer import DesiredStateWriter, Write


class CanaryPool:
    def __init__(self, names: list[str]) -> None:
        self._lock = threading.Lock()
        self._free = list(names)
        self._uses = dict.fromkeys(names, 0)

    def acquire(self) -> tuple[str, int] | None:
        """A free canary's key and the replicas to set, or None when all are busy."""
        with self._lock:
            if not self._free:
                return None
            name = self._free.pop(0)
            self._uses[name] += 1
            return f"{NAMESPACE}/{name}", 2 if self._uses[name] % 2 else 1

    def release(self, key: str) -> None:
        with self._lock:
            self._free.append(key.split("/", 1)[1])


class LoadBook:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cpu: dict[str, float] = {}

    def set(self, key: str, cpu: float) -> None:
        with self._lock:
            self._cpu[key] = cpu

    def items(self) -> list[tuple[str, float]]:
        with self._lock:
            return sorted(self._cpu.items())

    def zero_all(self) -> None:
        with self._lock:
            self._cpu = dict.fromkeys(self._cpu, 0.0)


@dataclass(kw_only=True)
class DrillContext:
    system: DrillSystem
    registry: Any                     # RegistryClient of the main thread
    ecsm: Any                         # ecsm Clientset of the main thread
    admin: Any                        # SimulatorAdmin
    writer: DesiredStateWriter
    ledger: Ledger
    tracker: RecoveryTracker
    workload: Workload
    canaries: CanaryPool
    loads: LoadBook = field(default_factory=LoadBook)
    monitor: Any = None               # Monitor, once started (for the progress line)
    #: Capacity pressure: snapshots also read node memory and containers.
    pressure: bool = False
    #: ``--store etcd``: every host by name (``a`` is :attr:`system`, with the simulator),
    #: the etcd cluster (:class:`~.etcd.DrillEtcd`) and the store's key prefix.
    hosts: dict[str, DrillSystem] = field(default_factory=dict)
    etcd: Any = None
    prefix: str = ""
    t0: float = field(default_factory=time.monotonic)

    def offset(self) -> float:
        return time.monotonic() - self.t0

    def canary_change(self, on_done: list[Any]) -> tuple[str, list[int]] | None:
        """Change a free canary's scale now; returns its key and a holder that receives
        the acknowledged generation. ``on_done`` gets the release callback appended."""
        got = self.canaries.acquire()
        if got is None:
            return None
        key, replicas = got
        generation: list[int] = []

        def mutate(obj: dict[str, Any]) -> None:
            obj["spec"]["deploymentStrategy"]["replicas"] = replicas

        def acked(obj: dict[str, Any] | None) -> None:
            if obj is not None:
                generation.append(int(obj["metadata"].get("generation") or 0))

        self.writer.submit(Write(op="modify", kind="ECSMService", key=key, mutate=mutate,
                                 on_ack=acked, label="canary"))
        on_done.append(lambda: self.canaries.release(key))
        return key, generation

    def registry_keys(self, kind: str) -> list[str]:
        """Keys of the live (not terminating) objects of ``kind`` the drill owns."""
        out = []
        for obj in self.registry.list(kind).items:
            meta = obj.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            out.append(f"{meta.get('namespace', NAMESPACE)}/{meta.get('name')}")
        return out

    def hpa_owned(self, kind: str, key: str) -> bool:
        """The replicas of this ECSMService belong to its HPA."""
        return kind == "ECSMService" and key in self.workload.hpa_target_keys
