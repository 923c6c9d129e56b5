"""A request window beyond its size is pruned at the registry's heartbeat
(``Store.release_pages``), in a transaction of its own, so that writes seldom prune; the
records within the window are still answered, and the prune survives a restart (real
LMDB, a fake clock)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecsm_actors.protocol import Op
from ecsm_actors.store import Outcome, Store, Write
from ecsm_actors.store.window import PRUNE_BATCH
from tests.store_writes import FakeClock, create, one

pytestmark = pytest.mark.timeout(30)

SIZE = 100 * PRUNE_BATCH  # the window's slack is then PRUNE_BATCH records


def refused(request_id: str) -> Write:
    """A DELETE of an object that is not there: refused, the refusal recorded."""
    return Write(op=Op.DELETE, fields={"kind": "ECSMService", "namespace": "default",
                                       "name": "absent", "requestId": request_id})


def open_store(path: Path) -> Store:
    return Store(path, map_size=64 << 20, clock=FakeClock(), boot_id=lambda: "boot-1",
                 request_window=SIZE)


def window_count(store: Store) -> int:
    with store._env.begin() as txn:  # noqa: SLF001 - the window's size is the point
        return store.window.count(txn)


def recorded(store: Store, request_id: str) -> object:
    with store._env.begin() as txn:  # noqa: SLF001
        return store.window.lookup(txn, request_id, FakeClock()())


def test_a_window_beyond_its_size_is_pruned_at_the_heartbeat_not_by_a_write(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    try:
        extra = PRUNE_BATCH // 2  # fewer than a write waits for before it prunes
        store.execute([refused(f"r-{i}") for i in range(SIZE + extra)])
        assert window_count(store) == SIZE + extra
        store.release_pages()  # the heartbeat
        assert window_count(store) == SIZE
        assert isinstance(one(store, create("web", "r-new")), Outcome)
        assert window_count(store) == SIZE + 1  # the write pruned nothing
        assert recorded(store, f"r-{extra - 1}") is None  # the oldest went
        assert recorded(store, f"r-{extra}") is not None  # the rest are answered
    finally:
        store.close()
    store = open_store(tmp_path / "data")
    try:
        assert window_count(store) == SIZE + 1  # the prune was logged with the write
    finally:
        store.close()


def test_a_heartbeat_prune_that_keeps_failing_is_reported_once_until_it_succeeds(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import lmdb

    store = open_store(tmp_path / "data")
    try:
        store.execute([refused(f"r-{i}") for i in range(SIZE + PRUNE_BATCH // 2)])
        real_prune = store.window.prune

        def full(*args: object, **kwargs: object) -> None:
            raise lmdb.MapFullError("MDB_MAP_FULL")

        monkeypatch.setattr(store.window, "prune", full)
        with caplog.at_level("WARNING", logger="ecsm_actors"):
            for _ in range(5):
                store.release_pages()  # five heartbeats with a full map
        warned = [r for r in caplog.records if "left to the writes to prune" in r.message]
        assert len(warned) == 1
        monkeypatch.setattr(store.window, "prune", real_prune)
        store.release_pages()  # it succeeds: the next failure is news again
        assert window_count(store) == SIZE
        store.execute([refused(f"s-{i}") for i in range(PRUNE_BATCH // 2)])
        monkeypatch.setattr(store.window, "prune", full)
        caplog.clear()
        with caplog.at_level("WARNING", logger="ecsm_actors"):
            store.release_pages()
            store.release_pages()
        assert len([r for r in caplog.records
                    if "left to the writes to prune" in r.message]) == 1
    finally:
        store.close()
