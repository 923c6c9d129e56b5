"""Wire types of ECSM images and registries (ecsm-api.md §6) and the ``name@tag#os`` ref.

Pure data, no I/O. ``createdTime`` of list items is RFC 3339; ``size`` is MB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecsm_actors.ecsm import wire


@dataclass(frozen=True, kw_only=True)
class ImageRef:
    """A parsed ECSM image reference ``name@tag[#os]``."""

    name: str
    tag: str
    os: str = ""

    def __str__(self) -> str:
        return f"{self.name}@{self.tag}#{self.os}" if self.os else f"{self.name}@{self.tag}"


def parse_ref(ref: str) -> ImageRef:
    """Split on the first ``#`` (os), then the first ``@`` (name, tag) as the Go helper
    does; raises ValueError with the Go wording when name or tag is missing."""
    body, _, os_ = ref.partition("#")
    name, at, tag = body.partition("@")
    if not at or not name or not tag:
        raise ValueError(f"invalid image ref: '{ref}', expected format name@tag[#os]")
    return ImageRef(name=name, tag=tag, os=os_)


@dataclass(frozen=True, kw_only=True)
class ImageListItem:
    """A ``GET image`` row."""

    id: str
    name: str
    os: str
    created_time: str
    tag: str
    size: float
    author: str | None
    arch: str
    pulled: bool
    description: str
    oci_version: str
    raw: dict[str, Any] = wire.raw_field()

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.tag}#{self.os}"


@dataclass(frozen=True, kw_only=True)
class ImageDetails:
    """``GET registry/{rid}/image/{id}``; ``config`` is the EcsImageConfig wire dict."""

    id: str
    name: str
    path: str
    os: str
    arch: str
    created_time: str
    size: float
    author: str | None
    raw_config: str
    config: dict[str, Any] | None
    oci_version: str
    hostname: str | None
    tag: str
    pulled: bool
    delete: bool
    raw: dict[str, Any] = wire.raw_field()


@dataclass(frozen=True, kw_only=True)
class ImageStatistics:
    """``GET image/summary``."""

    local: int
    remote: int


@dataclass(frozen=True, kw_only=True)
class RepositoryInfo:
    """A ``GET image/count`` item; ``status``/``standard`` are absent for ``local``."""

    count: int
    registry_id: str
    registry_name: str
    status: bool | None
    standard: bool | None
