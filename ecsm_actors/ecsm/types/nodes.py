"""Wire types of ECSM nodes (ecsm-api.md §5): details, status, view, metrics (the list
row, :class:`NodeInfo`, lives in :mod:`.node_info` and is re-exported here).

Pure data, no I/O. Irregularities kept as on the wire: get-by-name has ``ip``/``port``/
``tls`` as int (A-11), node-view children use snake_case ``node_id``/``pro_id`` (A-10),
metric percents are strings (A-12), uptime keys vary in case (A-9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecsm_actors.ecsm import wire
from ecsm_actors.ecsm.types.node_info import NodeInfo as NodeInfo  # re-exported


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
