"""The "list all" loop shared by every paged ECSM list (ecsm-api.md §1.9), and how sure
its result is.

Runs inside the caller's thread. Start at page 1 with the caller's page size (100 when 0);
stop at the first empty page, once the items collected reach ``total``, or — with a
``key`` (the ECSM id of a row) — at a page whose ids repeat a page already seen (a server
that ignores ``pageNum`` answers page 1 again and again). With a key, rows are one per id:
a row seen twice is one object, kept as first seen (a row without an id is kept as is).
``max_pages`` bounds a server whose ``total`` keeps growing.

:func:`collect` also says whether the result is *certain*: it is not when the pages
disagree with each other — a repeated page, an id on two pages or twice on one, a row
without an id, a ``total`` that changes between pages, or a count of distinct rows that
differs from ``total`` at the end. Callers that would act on the absence or the
multiplicity of a row (delete a duplicate, drop a finalizer) act only on a certain
listing; :func:`list_all` returns the rows and leaves doubts to the caller's judgement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ecsm_actors.ecsm.types import Page
from ecsm_actors.errors import EcsmDecodeError

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 100
MAX_PAGES = 100_000


@dataclass(frozen=True, kw_only=True)
class Listing(Generic[T]):
    """The rows of a paged list (one per key), and why they may be incomplete or wrong."""

    items: tuple[T, ...]
    #: What made the listing uncertain, in words; empty when the pages agreed.
    doubts: tuple[str, ...] = ()
    pages: int = 0

    @property
    def certain(self) -> bool:
        return not self.doubts


def collect(fetch: Callable[[int, int], Page[T]], page_size: int = DEFAULT_PAGE_SIZE,
            key: Callable[[T], str] | None = None,
            max_pages: int = MAX_PAGES) -> Listing[T]:
    """Every item of a paged list; ``fetch(page_num, page_size)`` gets one page. See the
    module doc for the rules; a list that never ends raises EcsmDecodeError."""
    size = page_size or DEFAULT_PAGE_SIZE
    rows: list[T] = []
    first_page_of: dict[str, int] = {}  # key → page it was first seen on
    pages_seen: dict[tuple[str, ...], int] = {}
    doubts: list[str] = []
    total: int | None = None
    for page_num in range(1, max_pages + 1):
        page = fetch(page_num, size)
        if total is not None and page.total != total:
            doubts.append(f"total changed from {total} to {page.total} on page {page_num}")
        total = page.total
        if not page.items:
            break
        if key is None:
            rows.extend(page.items)
        else:
            ids = tuple(key(item) for item in page.items)
            if ids in pages_seen:
                doubts.append(f"page {page_num} repeats page {pages_seen[ids]}")
                break
            pages_seen[ids] = page_num
            _add_keyed(page_num, page.items, ids, rows, first_page_of, doubts)
        if len(rows) >= page.total:
            break
    else:
        raise EcsmDecodeError(f"paged list did not end after {max_pages} pages",
                              cause="a paged list that never ends")
    if total is not None and len(rows) != total:
        doubts.append(f"{len(rows)} distinct rows listed but the total says {total}")
    return Listing(items=tuple(rows), doubts=tuple(dict.fromkeys(doubts)), pages=page_num)


def _add_keyed(page_num: int, items: tuple[T, ...], ids: tuple[str, ...], rows: list[T],
               first_page_of: dict[str, int], doubts: list[str]) -> None:
    for item, ident in zip(items, ids, strict=True):
        if not ident:  # kept (it cannot be told apart from others), but in doubt
            doubts.append(f"a row without an id on page {page_num}")
            rows.append(item)
            continue
        seen_on = first_page_of.get(ident)
        if seen_on is None:
            first_page_of[ident] = page_num
            rows.append(item)
        elif seen_on == page_num:
            doubts.append(f"id {ident[:40]} twice on page {page_num}")
        else:
            doubts.append(f"id {ident[:40]} on page {seen_on} and again on page {page_num}")


def list_all(fetch: Callable[[int, int], Page[T]], page_size: int = DEFAULT_PAGE_SIZE,
             max_pages: int = MAX_PAGES, key: Callable[[T], str] | None = None) -> list[T]:
    """The rows of :func:`collect`, whatever its doubts (for listings shown to a user)."""
    return list(collect(fetch, page_size, key, max_pages).items)
