"""Wire types shared by several ECSM resources: pages, transactions, container actions.

Pure data, no I/O; used by the client (decoding) and by tests. Attributes are the
snake_case of the wire names (ecsm-api.md §1.9, §4.6, §4.7, §8); ``raw`` keeps the wire dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from ecsm_actors.ecsm import wire

T = TypeVar("T")


class ContainerAction(StrEnum):
    """Container actions of PUT ``container`` / PUT ``service/container`` (§8)."""

    START = "start"
    STOP = "stop"
    RESTART = "restart"
    PAUSE = "pause"
    UNPAUSE = "unpause"


@dataclass(frozen=True, kw_only=True)
class Page(Generic[T]):
    """One page of a paged list (§1.9): ``total`` counts all pages, ``items`` is ``list``."""

    total: int
    page_num: int
    page_size: int
    items: tuple[T, ...]
    raw: dict[str, Any] = wire.raw_field()


@dataclass(frozen=True, kw_only=True)
class _PageHead:
    total: int
    page_num: int
    page_size: int
    list: tuple[Any, ...]


def decode_page(item: type[T], value: Any, path: str = "data") -> Page[T]:
    """Decode a paged ``data`` whose ``list`` holds ``item`` objects."""
    head = wire.decode(_PageHead, value, path)
    items = tuple(wire.decode(item, v, f"{path}.list[{i}]") for i, v in enumerate(head.list))
    return Page(total=head.total, page_num=head.page_num, page_size=head.page_size,
                items=items, raw=value or {})


@dataclass(frozen=True, kw_only=True)
class Transaction:
    """Handle of an asynchronous operation (§4.6); ``timestamp`` is epoch milliseconds."""

    id: str
    status: str
    data: Any
    timestamp: int
    raw: dict[str, Any] = wire.raw_field()


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    """One container action record (§4.7): ``id`` is the task id, ``cmd`` the action."""

    id: str
    cmd: str
    user: str
    time: str
    raw: dict[str, Any] = wire.raw_field()
