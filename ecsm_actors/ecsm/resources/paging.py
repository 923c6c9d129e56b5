"""The "list all" loop shared by every paged ECSM list (ecsm-api.md §1.9).

Runs inside the caller's thread. Start at page 1 with the caller's page size (100 when 0);
stop at the first empty page, or once the items collected reach ``total``. A server that
ignores ``pageNum`` would give duplicates but the loop still ends; ``max_pages`` bounds a
server whose ``total`` keeps growing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ecsm_actors.ecsm.types import Page
from ecsm_actors.errors import EcsmDecodeError

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 100
MAX_PAGES = 100_000


def list_all(fetch: Callable[[int, int], Page[T]], page_size: int = DEFAULT_PAGE_SIZE,
             max_pages: int = MAX_PAGES) -> list[T]:
    """Collect every item of a paged list; ``fetch(page_num, page_size)`` gets one page."""
    size = page_size or DEFAULT_PAGE_SIZE
    out: list[T] = []
    for page_num in range(1, max_pages + 1):
        page = fetch(page_num, size)
        if not page.items:
            return out
        out.extend(page.items)
        if len(out) >= page.total:
            return out
    raise EcsmDecodeError(f"paged list did not end after {max_pages} pages")
