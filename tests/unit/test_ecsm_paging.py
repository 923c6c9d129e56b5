"""The "list all" loop against servers whose pages disagree (ecsm-api.md §1.9, A-24):
pages repeated, rows on two pages, a total that moves. Fake transport, no sockets."""

from __future__ import annotations

from typing import Any

import pytest

from ecsm_actors.ecsm.resources.paging import collect
from ecsm_actors.ecsm.types import Page
from tests.unit.test_ecsm_rest import client, ok, page

pytestmark = pytest.mark.timeout(10)


def rows(*ids: str) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"default.web.{i}"} for i in ids]


def test_a_server_ignoring_page_num_is_read_once_and_the_listing_is_in_doubt() -> None:
    first = ok(page(rows("a", "b"), total=5))
    cs, transport = client(first, first, first, first)
    assert [r.id for r in cs.services.list_all(page_size=2)] == ["a", "b"]
    assert len(transport.sent) == 2  # page 2 repeated page 1: the loop stopped there
    cs, _ = client(first, first)
    listing = cs.services.collect(page_size=2)
    assert not listing.certain
    assert "page 2 repeats page 1" in listing.doubts


def test_a_row_seen_twice_with_the_same_id_is_one_service_and_a_doubt() -> None:
    cs, _ = client(ok(page(rows("a", "b"), total=3)), ok(page(rows("b", "c"), total=3)))
    listing = cs.services.collect(page_size=2)
    assert [r.id for r in listing.items] == ["a", "b", "c"]
    assert listing.doubts == ("id b on page 1 and again on page 2",)
    cs, _ = client(ok(page(rows("a", "a"), total=2)), ok(page([], total=2)))
    listing = cs.services.collect()
    assert [r.id for r in listing.items] == ["a"] and not listing.certain


def test_a_total_that_moves_between_pages_or_disagrees_with_the_rows_is_a_doubt() -> None:
    cs, _ = client(ok(page(rows("a", "b"), total=4)), ok(page(rows("c"), total=3)))
    listing = cs.services.collect(page_size=2)
    assert [r.id for r in listing.items] == ["a", "b", "c"]
    assert listing.doubts == ("total changed from 4 to 3 on page 2",)
    cs, _ = client(ok(page(rows("a"), total=3)), ok(page([], total=3)))
    assert cs.services.collect().doubts == ("1 distinct rows listed but the total says 3",)
    cs, _ = client(ok(page(rows("a", "b"), total=1)))
    assert not cs.services.collect().certain


def test_a_row_without_an_id_is_kept_but_in_doubt() -> None:
    cs, _ = client(ok(page([{"name": "x"}], total=1)))
    listing = cs.services.collect()
    assert len(listing.items) == 1 and not listing.certain


def test_pages_that_agree_make_a_certain_listing_in_as_few_calls_as_before() -> None:
    cs, transport = client(ok(page(rows("a", "b"), total=3)), ok(page(rows("c"), total=3)))
    listing = cs.services.collect(page_size=2)
    assert listing.certain and [r.id for r in listing.items] == ["a", "b", "c"]
    assert len(transport.sent) == 2
    cs, transport = client(ok(page([], total=0)))
    assert cs.services.collect().certain and len(transport.sent) == 1


def test_without_a_key_rows_are_counted_as_sent() -> None:
    pages = [Page(total=3, page_num=0, page_size=0, items=(1, 1)),
             Page(total=3, page_num=0, page_size=0, items=(2,))]
    listing = collect(lambda n, _: pages[n - 1], 2)
    assert listing.items == (1, 1, 2) and listing.certain
