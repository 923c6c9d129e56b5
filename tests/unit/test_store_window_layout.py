"""The request window's layout: one sub-database for its records and their order, and a
store written with the order in a sub-database of its own (``request_order``) moved over
when it opens, its recorded requests still answered and pruned (real LMDB)."""

from __future__ import annotations

from pathlib import Path

import lmdb
import pytest

from ecsm_actors.errors import AlreadyExists
from ecsm_actors.store import Outcome, Store
from ecsm_actors.store.window import ORDER
from tests.store_writes import FakeClock, create, one

pytestmark = pytest.mark.timeout(30)


def open_store(path: Path, **options: object) -> Store:
    return Store(path, map_size=16 << 20, clock=FakeClock(), boot_id=lambda: "boot-1",
                 **options)


def as_written_before(path: Path) -> int:
    """Move the window's order records of the closed store at ``path`` into a
    ``request_order`` sub-database (key ``seq``), as stores were written before; how many."""
    env = lmdb.open(str(path), max_dbs=6, subdir=True)
    try:
        requests = env.open_db(b"requests")
        order = env.open_db(b"request_order")
        with env.begin(write=True) as txn:
            cursor = txn.cursor(db=requests)
            moved = []
            if cursor.set_range(ORDER):
                moved = [(bytes(k), bytes(v)) for k, v in cursor]
            for key, value in moved:
                txn.delete(key, db=requests)
                txn.put(key[1:], value, db=order, append=True)
        return len(moved)
    finally:
        env.close()


def has_request_order(env: lmdb.Environment) -> bool:
    try:
        env.open_db(b"request_order", create=False)
    except lmdb.NotFoundError:
        return False
    return True


def test_a_store_with_the_window_order_apart_is_moved_over_and_keeps_its_requests(
        tmp_path: Path) -> None:
    path = tmp_path / "data"
    store = open_store(path)
    firsts = [one(store, create(f"s{i}", request_id=f"r-{i}")) for i in range(3)]
    store.close()
    assert as_written_before(path) == 3

    store = open_store(path, request_window=2)
    try:
        assert not has_request_order(store._env)  # noqa: SLF001 - moved over, then dropped
        again = one(store, create("s1", request_id="r-1"))  # a retry: answered, not applied
        assert isinstance(again, Outcome) and again.replayed
        assert again.encoded == firsts[1].encoded
        with store._env.begin() as txn:  # noqa: SLF001 - the window's records are the point
            assert store.window.count(txn) == 2  # the oldest pruned by that write
        assert isinstance(one(store, create("s9", request_id="r-9")), Outcome)
    finally:
        store.close()
    store = open_store(path, request_window=2)
    try:
        assert one(store, create("s2", request_id="r-2")).replayed  # type: ignore[union-attr]
        pruned = one(store, create("s0", request_id="r-0"))  # evaluated again
        assert isinstance(pruned, AlreadyExists) and not pruned.replayed
    finally:
        store.close()
