"""The store's writes gathered in one LMDB transaction across turns (``commit_interval``):
every read sees each acknowledged write of the open batch, a turn that fails midway
leaves no half of itself and keeps the turns before it, and the files as a ``kill -9``
leaves them (the batch never committed) open with every acknowledged write (real LMDB,
the files as the kernel holds them)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import lmdb
import pytest

from ecsm_actors.errors import StoreFull
from ecsm_actors.store import Outcome, Store
from tests.store_writes import FakeClock, create, names, one
from tests.unit.test_store_power_loss import torn_data

pytestmark = pytest.mark.timeout(30)


def open_store(path: Path, **options: Any) -> Store:
    return Store(path, map_size=16 << 20, clock=FakeClock(), boot_id=lambda: "boot-1",
                 checkpoint_interval=3600, commit_interval=3600, **options)


def test_every_read_sees_the_acknowledged_writes_of_the_open_batch(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    try:
        start = store.resource_version
        for i in range(3):
            assert isinstance(one(store, create(f"s{i}", request_id=f"r-{i}")), Outcome)
        assert store._open_batch is not None  # noqa: SLF001 - nothing committed yet
        assert store.get("ECSMService", "default", "s2")["metadata"]["name"] == "s2"
        events, rv = store.watch_since(start)
        assert [e.seq for e in events] == [start + 1, start + 2, start + 3] and rv == start + 3
        assert names(store) == ["s0", "s1", "s2"]
    finally:
        store.close()


def test_a_kill_with_the_batch_uncommitted_loses_no_acknowledged_write(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    try:
        for i in range(3):
            assert isinstance(one(store, create(f"s{i}", request_id=f"r-{i}")), Outcome)
        assert store._open_batch is not None  # noqa: SLF001
        shutil.copytree(store.path, tmp_path / "killed",
                        ignore=shutil.ignore_patterns("*.lock"))
    finally:
        store.close()
    again = open_store(tmp_path / "killed")  # the same boot: the log replayed
    try:
        assert names(again) == ["s0", "s1", "s2"]
        retried = one(again, create("s1", request_id="r-1"))
        assert isinstance(retried, Outcome) and retried.replayed
    finally:
        again.close()


def test_a_turn_that_fails_midway_leaves_no_half_of_itself_and_keeps_the_turns_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "data")
    real = Store._log_event

    def log_event(self: Store, txn: Any, target: Any, *args: Any) -> Any:
        if target.name == "bad":  # its object already put: a half turn
            raise lmdb.MapFullError("mdb_put: MDB_MAP_FULL")
        return real(self, txn, target, *args)

    monkeypatch.setattr(Store, "_log_event", log_event)
    try:
        start = store.resource_version
        assert isinstance(one(store, create("a", request_id="r-a")), Outcome)
        results = store.execute([create("c", request_id="r-c"),
                                 create("bad", request_id="r-bad")])
        assert isinstance(results[0], Outcome) and isinstance(results[1], StoreFull)
        assert names(store) == ["a", "c"]
        events, rv = store.watch_since(start)
        assert [e.seq for e in events] == [start + 1, start + 2] and rv == start + 2
    finally:
        store.close()
    again = Store(tmp_path / "data", map_size=16 << 20, clock=FakeClock(),
                  boot_id=lambda: "boot-2")
    try:
        assert names(again) == ["a", "c"] and again.resource_version == start + 2
    finally:
        again.close()


def test_the_loop_idle_commits_the_batch_once_it_is_due_and_not_before(
        tmp_path: Path) -> None:
    store = Store(tmp_path / "data", map_size=16 << 20, clock=FakeClock(),
                  checkpoint_interval=3600, commit_interval=0.05)
    try:
        assert isinstance(one(store, create("s0")), Outcome)
        store.idle()
        assert store._open_batch is not None  # noqa: SLF001 - younger than the interval
        due = time.monotonic() + 0.05
        while time.monotonic() < due:
            time.sleep(0.01)
        store.idle()
        assert store._open_batch is None  # noqa: SLF001 - committed
        with store._env.begin() as txn:  # noqa: SLF001 - as committed in data.mdb
            assert txn.get(b"ECSMService/default/s0", db=store._objects) is not None  # noqa: SLF001
    finally:
        store.close()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_after_a_power_loss_the_writes_of_committed_and_open_batches_are_back(
        tmp_path: Path, seed: int) -> None:
    store = open_store(tmp_path / "data")
    try:
        for i in range(10):
            assert isinstance(one(store, create(f"s{i}", request_id=f"r-{i}")), Outcome)
        store.checkpoint()
        durable = (store.path / "data.mdb").read_bytes()
        for i in range(10, 20):  # committed to data.mdb, never synced there
            assert isinstance(one(store, create(f"s{i}", request_id=f"r-{i}")), Outcome)
        store.flush()
        for i in range(20, 25):  # acknowledged, in the open batch only
            assert isinstance(one(store, create(f"s{i}", request_id=f"r-{i}")), Outcome)
        assert store._open_batch is not None  # noqa: SLF001
        torn_data(durable, (store.path / "data.mdb").read_bytes(), seed, tmp_path / "torn",
                  log=(store.path / "wal").read_bytes())
    finally:
        store.close()
    again = Store(tmp_path / "torn", map_size=16 << 20, clock=FakeClock(),
                  boot_id=lambda: "boot-2", commit_interval=3600)
    try:
        assert names(again) == sorted(f"s{i}" for i in range(25))
        retried = one(again, create("s22", request_id="r-22"))
        assert isinstance(retried, Outcome) and retried.replayed
    finally:
        again.close()
