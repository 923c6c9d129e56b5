"""Wire types of ECSM services (ecsm-api.md §3): list rows, details and their parts.

Pure data, no I/O. Create/update bodies stay plain wire dicts (built by the service
controller); only answers are typed. ``ErrorInstance.status`` is a bool per the Go client
but a string per the API doc (A-6): both are accepted and kept as sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecsm_actors.ecsm import wire


@dataclass(frozen=True, kw_only=True)
class ImageListEntry:
    """An ``imageList`` item, parsed from the service's ``name@tag#os`` ref."""

    name: str
    os: str
    tag: str


@dataclass(frozen=True, kw_only=True)
class ServiceNodeInfo:
    """A ``nodeList`` item: a node the service is deployed to."""

    node_id: str
    node_name: str
    address: str


@dataclass(frozen=True, kw_only=True)
class ErrorInstance:
    """An ``errorInstance`` item: a failed container of the service."""

    container_id: str
    node_id: str
    node_name: str
    status: bool | str
    message: str


@dataclass(frozen=True, kw_only=True)
class ServiceRow:
    """A ``GET service`` list row (``ProvisionListRow``)."""

    id: str
    name: str
    status: str
    updated_time: str
    created_time: str
    image_list: tuple[ImageListEntry, ...]
    node_list: tuple[ServiceNodeInfo, ...]
    container_status_group: tuple[str, ...]
    factor: int
    policy: str
    error_instance: tuple[ErrorInstance, ...]
    instance_online: int
    default_labels: tuple[str, ...]
    path_label: str
    raw: dict[str, Any] = wire.raw_field()

    @property
    def image(self) -> str:
        """``name:tag`` of the first image, as the CLI shows it, or ``N/A``."""
        if not self.image_list:
            return "N/A"
        return f"{self.image_list[0].name}:{self.image_list[0].tag}"


@dataclass(frozen=True, kw_only=True)
class ImageSpec:
    """The ``image`` object as stored: ``config`` and ``vsoa`` stay wire dicts."""

    ref: str
    action: str
    config: dict[str, Any] | None
    vsoa: dict[str, Any] | None
    pull_policy: str
    auto_upgrade: str


@dataclass(frozen=True, kw_only=True)
class NodeSpec:
    """``node``: target node names."""

    names: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ServiceDetail:
    """``GET service/{id}``."""

    id: str
    name: str
    status: str
    container_status_group: tuple[str, ...]
    healthy: bool
    factor: int
    policy: str
    instance_online: int
    instance_active: int
    created_time: str
    updated_time: str
    image: ImageSpec | None
    node: NodeSpec | None
    node_list: tuple[ServiceNodeInfo, ...]
    raw: dict[str, Any] = wire.raw_field()
