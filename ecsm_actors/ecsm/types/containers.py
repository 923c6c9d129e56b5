"""Wire types of ECSM containers (ecsm-api.md §4.1): ContainerInfo and its CPU usage.

Pure data, no I/O. ``uptime`` is an int here (unlike node ``upTime`` floats, A-9); the
decoder's case-insensitive fallback accepts either spelling of the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecsm_actors.ecsm import wire


@dataclass(frozen=True, kw_only=True)
class CpuUsage:
    """``cpuUsage``: total percent and per-core percents."""

    total: float
    cores: tuple[float, ...]


@dataclass(frozen=True, kw_only=True)
class ContainerInfo:
    """One container instance; ``id`` and ``task_id`` are distinct, both stable."""

    id: str
    task_id: str
    name: str
    status: str
    uptime: int
    started_time: str
    created_time: str
    task_created_time: str
    deploy_status: str
    failed_message: str | None
    restart_cnt: int
    deploy_num: int
    cpu_usage: CpuUsage
    memory_limit: int
    memory_usage: int
    memory_max_usage: int
    size_usage: int
    size_limit: int
    service_id: str
    service_name: str
    node_id: str
    address: str
    node_name: str
    node_arch: str
    image_id: str
    image_name: str
    image_version: str
    image_os: str = wire.wire("imageOS")
    image_arch: str
    raw: dict[str, Any] = wire.raw_field()

    @property
    def running(self) -> bool:
        return self.status == "running"
