"""The simulator's stored records: nodes, images, services, containers, history.

Runs inside the simulator process only. Records are mutable (the state mutates them under
its lock) and hold only what is *stored*; every derived value (instanceOnline, node
counts, metrics, ...) is computed by :mod:`.views` at read time. Times are wall-clock
epoch seconds so a persisted state survives a restart. ``to_dict``/``from_dict`` are the
persistence format (plain JSON).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")

MIB = 1 << 20
GIB = 1 << 30

#: Container states kept in ``ContainerRec.state``. ``created`` becomes ``running`` by
#: itself once ``ready_at`` has passed (evaluated lazily on read, no timer threads).
CREATED, RUNNING, STOP, PAUSED, EXITED = "created", "running", "stop", "paused", "exited"


def stable_id(kind: str, key: str) -> str:
    """A deterministic opaque id (seeded objects keep their ids across restarts)."""
    return hashlib.sha256(f"{kind}:{key}".encode()).hexdigest()[:32]


def fmt_time(ts: float) -> str:
    """ECSM's ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    return _fmt_second(int(ts))


@functools.lru_cache(maxsize=4096)
def _fmt_second(ts: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def fmt_rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


@dataclass(slots=True, kw_only=True)
class NodeRec:
    id: str
    name: str
    address: str
    password: str
    tls: bool = False
    type: str = "edge"
    arch: str = "arm64"
    status: str = "online"
    created_at: float
    boot_at: float
    ecsd_version: str = "2.4.1"
    cpu_cores: int = 4
    #: Memory the node's containers may reserve (see :mod:`.capacity`).
    memory_bytes: int = 4 * GIB
    disk_mb: int = 32 * 1024

    @property
    def online(self) -> bool:
        return self.status == "online"

    @property
    def ip(self) -> str:
        return self.address.rsplit(":", 1)[0] if ":" in self.address else self.address

    @property
    def port(self) -> int:
        tail = self.address.rsplit(":", 1)[1] if ":" in self.address else ""
        return int(tail) if tail.isdigit() else 0


@dataclass(slots=True, kw_only=True)
class ImageRec:
    id: str
    registry_id: str = "local"
    name: str
    tag: str
    os: str = "sylixos"
    arch: str = "arm64"
    created_at: float
    size: float
    author: str | None = None
    pulled: bool = True
    description: str = ""
    oci_version: str = "1.0.2"
    path: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    hostname: str | None = None
    delete: bool = False

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.tag}#{self.os}"


@dataclass(slots=True, kw_only=True)
class ServiceRec:
    id: str
    name: str
    created_at: float
    updated_at: float
    factor: int
    policy: str
    prepull: bool = False
    #: The ImageSpec exactly as submitted (ref, action, config, vsoa, pullPolicy, ...).
    image: dict[str, Any] = field(default_factory=dict)
    node_names: list[str] = field(default_factory=list)
    default_labels: list[str] = field(default_factory=list)
    path_label: str = ""
    #: Usage model: total CPU percent and memory bytes shared by the running instances.
    load_cpu: float = 0.0
    load_memory: int = 0


@dataclass(slots=True, kw_only=True)
class ContainerRec:
    id: str
    task_id: str
    name: str
    service_id: str
    node_id: str
    image_id: str
    state: str
    created_at: float
    ready_at: float
    started_at: float = 0.0
    failed_message: str | None = None
    restart_cnt: int = 0
    deploy_num: int = 1
    #: Stopped because its node went down; restarted when the node comes back.
    stopped_by_node: bool = False
    #: Refused for lack of memory (see :mod:`.capacity`): ``exited``, holds no memory.
    refused: bool = False

    def status(self, now: float) -> str:
        """The effective status: ``created`` turns ``running`` once ``ready_at`` passed."""
        if self.state == CREATED and now >= self.ready_at:
            return RUNNING
        return self.state

    def started(self, now: float) -> float:
        if self.state == CREATED:
            return self.ready_at if now >= self.ready_at else 0.0
        return self.started_at


def to_dict(rec: Any) -> dict[str, Any]:
    return dataclasses.asdict(rec)


def from_dict(cls: type[R], doc: dict[str, Any]) -> R:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in doc.items() if k in names})
