"""The ``GET node`` row (ecsm-api.md §5), apart from the other node types.

Pure data, no I/O. A module of its own because it is the one node type the service
controller needs (its node-state cache): importing it does not create the other eighteen
dataclasses of :mod:`.nodes` (each costs about a millisecond at a process's start).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecsm_actors.ecsm import wire


@dataclass(frozen=True, kw_only=True)
class NodeInfo:
    """A ``GET node`` row."""

    id: str
    address: str
    name: str
    password: str
    status: str
    type: str
    tls: bool
    container_total: int
    container_running: int
    container_ecsm_total: int
    container_ecsm_running: int
    up_time: float
    created_time: str
    arch: str
    raw: dict[str, Any] = wire.raw_field()
