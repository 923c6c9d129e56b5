"""With registry.checkpoint_pages, a checkpoint begins once the commits since the last one
dirtied about that many pages, not only once an interval has passed: LMDB reuses no page
freed after the snapshot a checkpoint holds, so data.mdb grows by what is dirtied between
two checkpoints (real LMDB, a long interval)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecsm_actors.store import Outcome, Store, wal
from tests.store_writes import FakeClock, create, one

pytestmark = pytest.mark.timeout(30)


def test_a_create_with_a_request_id_is_counted_as_the_pages_it_dirties() -> None:
    ops = [wal.PUT, "objects", b"k", b"v", wal.APPEND, "events", b"1", b"s",
           wal.PUT, "requests", b"r", b"o", wal.APPEND, "request_order", b"1", b"t"]
    # main and free databases, a root-to-leaf path of the two written at random, a root
    # and the last leaf of the two appended to
    assert wal.dirtied_pages(ops) == 2 + 2 * wal.PATH_PAGES + 2 * 2


def test_appended_values_count_the_pages_their_bytes_fill_and_put_values_do_not() -> None:
    ops = [wal.PUT, "objects", b"k", b"v" * 9000, wal.DELETE, "events", b"1", None,
           wal.APPEND, "events", b"1", b"w" * 5000, wal.APPEND, "events", b"2", b"s" * 4000]
    # main and free, two paths of two sub-databases, the put's and the delete's leaves,
    # and the 9,000 appended bytes: two whole pages
    assert wal.dirtied_pages(ops) == 2 + 2 * (wal.PATH_PAGES - 1) + 2 + 9000 // 4096


def test_writes_that_dirty_the_page_budget_begin_a_checkpoint_before_the_interval(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "data", map_size=64 << 20, clock=FakeClock(),
                  boot_id=lambda: "boot-1", checkpoint_interval=3600,
                  checkpoint_pages=1024)
    try:
        before = store.wal_stats()["checkpoints"]
        for i in range(1024 // 10 + 2):  # a create dirties about 10 (as counted)
            assert isinstance(one(store, create(f"s{i}", request_id=f"r-{i}")), Outcome)
        pending = store._ckpt._pending  # noqa: SLF001 - the checkpoint in flight is the point
        if pending is not None:
            assert pending.done.wait(10)
            store.release_pages()  # finishes it
        assert store.wal_stats()["checkpoints"] == before + 1
        assert store.wal_stats()["bytes"] < 100 << 10  # the log did not trigger it
    finally:
        store.close()
