"""Wire types shared by several ECSM resources: pages, transactions, container actions.

Pure data, no I/O; used by the client (decoding) and by tests. Attributes are the
snake_case of the wire names (ecsm-api.md §1.9, §4.6, §4.7, §8); ``raw`` keeps the wire dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from ecsm_actors.ecsm import wire
from ecsm_actors.errors import EcsmDecodeError

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
    """Decode a paged ``data`` whose ``list`` holds ``item`` objects.

    Stricter than the Go client (which reads ``data: null`` as an empty page): a page must
    be an object with an integer ``total`` ≥ 0 and a ``list`` of objects (``null`` only when
    ``total`` is 0). Anything else cannot be a complete list, so it is an
    :class:`~ecsm_actors.errors.EcsmDecodeError`, never an empty page.
    """
    head = wire.decode_required(_PageHead, value, path)
    total = wire.lookup(value, "total")
    rows = wire.lookup(value, "list")
    why = None
    if total is None:
        why = "the page has no total"
    elif head.total < 0:
        why = f"the page's total is negative ({head.total})"
    elif rows is None and head.total > 0:
        why = f"the page's list is missing or null but its total is {head.total}"
    if why:
        raise EcsmDecodeError(f"{path}: {why}: not a complete list",
                              cause="a page that cannot be a complete list")
    items = tuple(wire.decode_required(item, v, f"{path}.list[{i}]")
                  for i, v in enumerate(head.list))
    return Page(total=head.total, page_num=head.page_num, page_size=head.page_size,
                items=items, raw=value)


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
