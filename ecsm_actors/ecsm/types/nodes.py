"""Wire types of ECSM nodes (ecsm-api.md §5): details, status, view, metrics (the list
row, :class:`NodeInfo`, lives in :mod:`.node_info` and is re-exported here).

Pure data, no I/O. Irregularities kept as on the wire: get-by-name has ``ip``/``port``/
``tls`` as int (A-11), node-view children use snake_case ``node_id``/``pro_id`` (A-10),
metric percents are strings (A-12), uptime keys vary in case (A-9).

Capacity (what a scheduler reads): ``GET node/status`` reports a node's container memory
as ``memoryTotal`` (what containers may reserve; the OS's own share is outside it) and
``memoryFree`` (``memoryTotal`` minus the memory limits of the containers deployed there).
:class:`NodeCapacity` joins it with the ``GET node`` row (name, status) and
:func:`node_capacities` builds the map by node name; :func:`memory_held` sums what each
ECSM service holds per node from its containers (a container whose deployment failed,
``deployStatus == "failed"``, holds nothing); :func:`memory_limit_mb` reads
``sylixos.resources.memory.memoryLimitMB`` from an EcsImageConfig.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ecsm_actors.ecsm import wire
from ecsm_actors.ecsm.types.node_info import NodeInfo as NodeInfo  # re-exported

if TYPE_CHECKING:
    from ecsm_actors.ecsm.types.containers import ContainerInfo

MIB = 1 << 20


@dataclass(frozen=True, kw_only=True)
class NodeDetailsById:
    """``GET node/{id}``."""

    id: str
    address: str
    name: str
    password: str
    tls: bool
    type: str
    created_time: str
    arch: str
    ecsd_version: str
    raw: dict[str, Any] = wire.raw_field()


@dataclass(frozen=True, kw_only=True)
class NodeDetailsByName:
    """``GET node/name/{name}``: ``ip`` + int ``port`` and ``tls`` as 0/1."""

    id: str
    ip: str
    port: int
    name: str
    password: str
    tls: int
    type: str
    created_time: str
    arch: str
    raw: dict[str, Any] = wire.raw_field()


@dataclass(frozen=True, kw_only=True)
class NodeCpuUsage:
    total: float
    cores: tuple[float, ...]
    measure_time: int


@dataclass(frozen=True, kw_only=True)
class NetStat:
    network_name: str
    up_net: float
    down_net: float


@dataclass(frozen=True, kw_only=True)
class NodeTime:
    current: int
    uptime: float
    timezone: str
    timezone_name: str
    date: str


@dataclass(frozen=True, kw_only=True)
class NodeStatus:
    """An item of ``GET node/status``."""

    id: str
    status: str
    memory_total: int
    memory_free: int
    disk_total: float
    disk_free: float
    cpu_usage: NodeCpuUsage
    uptime: float
    process_count: int
    container_total: int
    container_running: int
    container_ecsm_total: int
    container_ecsm_running: int
    net: tuple[NetStat, ...]
    time: NodeTime
    raw: dict[str, Any] = wire.raw_field()

    @property
    def memory_allocated(self) -> int:
        """Bytes reserved by the containers deployed on the node (total − free, ≥ 0)."""
        return max(0, self.memory_total - self.memory_free)


@dataclass(frozen=True, kw_only=True)
class NodeCapacity:
    """Container memory of one node: the ``GET node`` row joined with its ``node/status``.

    ``memory_total`` is what containers may reserve on the node, ``memory_free`` what is
    left after the memory limits of the containers deployed there (a node without a status
    answer has 0 of both: nothing is known to fit)."""

    id: str
    name: str
    status: str
    memory_total: int
    memory_free: int

    @property
    def memory_allocated(self) -> int:
        return max(0, self.memory_total - self.memory_free)

    @property
    def online(self) -> bool:
        return self.status == "online"

    def fits(self, reservation: int) -> int:
        """How many more instances reserving ``reservation`` bytes each fit here now."""
        if reservation <= 0:
            raise ValueError("a reservation is a positive number of bytes")
        return max(0, self.memory_free) // reservation


def node_capacities(nodes: Iterable[NodeInfo], statuses: Iterable[NodeStatus]
                    ) -> dict[str, NodeCapacity]:
    """Node name → its capacity, from ``nodes.list_all()`` and ``nodes.list_status(ids)``."""
    by_id = {s.id: s for s in statuses}
    out: dict[str, NodeCapacity] = {}
    for node in nodes:
        st = by_id.get(node.id)
        out[node.name] = NodeCapacity(
            id=node.id, name=node.name, status=st.status if st and st.status else node.status,
            memory_total=max(0, st.memory_total) if st else 0,
            memory_free=max(0, st.memory_free) if st else 0)
    return out


def memory_held(containers: Iterable[ContainerInfo]) -> dict[str, dict[str, int]]:
    """ECSM service id → node name → bytes its containers hold there (each container its
    ``memoryLimit``; one whose deployment failed holds nothing)."""
    out: dict[str, dict[str, int]] = {}
    for c in containers:
        if c.deploy_status == "failed":
            continue
        per_node = out.setdefault(c.service_id, {})
        per_node[c.node_name] = per_node.get(c.node_name, 0) + max(0, c.memory_limit)
    return out


def memory_limit_mb(config: Mapping[str, Any] | None) -> int | None:
    """``sylixos.resources.memory.memoryLimitMB`` of an EcsImageConfig (a service's
    ``image.config`` or an image's built-in one) when it is a positive integer, else None.
    A container reserves that many MiB (× ``MIB``) on its node."""
    if not isinstance(config, Mapping):
        return None
    node: Any = config
    for key in ("sylixos", "resources", "memory", "memoryLimitMB"):
        node = node.get(key) if isinstance(node, Mapping) else None
    if isinstance(node, int) and not isinstance(node, bool) and node > 0:
        return node
    return None


@dataclass(frozen=True, kw_only=True)
class NodeStatusList:
    """The ``data`` of ``GET node/status``: ``{nodes: [...]}``."""

    nodes: tuple[NodeStatus, ...]


@dataclass(frozen=True, kw_only=True)
class NodeViewProvision:
    """The service of a node-view container."""

    id: str
    status: str
    name: str
    type: str
    health: bool


@dataclass(frozen=True, kw_only=True)
class NodeViewContainer:
    id: str
    name: str
    node_id: str = wire.wire("node_id")
    pro_id: str = wire.wire("pro_id")
    type: str
    status: str
    children: tuple[NodeViewProvision, ...]


@dataclass(frozen=True, kw_only=True)
class NodeView:
    """``GET overview/platform/node-view/{id}``."""

    id: str
    status: str
    type: str
    name: str
    children: tuple[NodeViewContainer, ...]
    raw: dict[str, Any] = wire.raw_field()


@dataclass(frozen=True, kw_only=True)
class Percent:
    percent: str


@dataclass(frozen=True, kw_only=True)
class SizedPercent:
    percent: str
    size: float


@dataclass(frozen=True, kw_only=True)
class ProcessMetrics:
    name: str
    cpu: Percent
    ram: SizedPercent


@dataclass(frozen=True, kw_only=True)
class NetValue:
    network_name: str
    value: float


@dataclass(frozen=True, kw_only=True)
class NodeMetrics:
    """An item of ``GET overview/node``: ``ram.size`` bytes, ``rom.size`` MB (A-12)."""

    timestamp: int
    type: str
    cpu: Percent
    rom: SizedPercent
    ram: SizedPercent
    process_count: int
    process: tuple[ProcessMetrics, ...]
    up_net: tuple[NetValue, ...]
    down_net: tuple[NetValue, ...]
    up_time: float
    running: int
    stop: int
    raw: dict[str, Any] = wire.raw_field()


@dataclass(frozen=True, kw_only=True)
class NodeTypeUpdateInfo:
    """An item of ``GET node/type/check``."""

    id: str
    ip: str
    port: int
    name: str
    type: str
    new_type: str


@dataclass(frozen=True, kw_only=True)
class ServeRef:
    id: str
    name: str


@dataclass(frozen=True, kw_only=True)
class NodeDeleteConflict:
    """A node ``DELETE node`` refused because services use it."""

    id: str
    name: str
    serves: tuple[ServeRef, ...]


@dataclass(frozen=True, kw_only=True)
class NameCheck:
    """Result of ``node/name/check`` or ``node/address/check`` (``is_valid = not exists``)."""

    is_valid: bool
    message: str
