"""A write's log record is written before LMDB commits its transaction (the record's sync
under way meanwhile): when that commit fails, a cancel record keeps every recovery from
redoing it; when the process dies between the two, a recovery (in the same boot too:
the log may hold acknowledged writes data.mdb lacks) redoes the orphan record whole,
request window included; when the record's sync fails, the store stops and the next open
recovers from the log (real LMDB, the files as the kernel holds them)."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lmdb
import pytest

from ecsm_actors.errors import StoreFull
from ecsm_actors.store import Outcome, Store, wal
from ecsm_actors.store.wal import WalFailed
from tests.store_writes import FakeClock, create, names, one

pytestmark = pytest.mark.timeout(30)


def open_store(path: Path, boot: str, **options: Any) -> Store:
    return Store(path, map_size=16 << 20, clock=FakeClock(), boot_id=lambda: boot,
                 checkpoint_interval=3600, **options)


def failing_commit(monkeypatch: pytest.MonkeyPatch, before: Callable[[], None]) -> None:
    """The next LMDB commit of a write calls ``before`` (its record is in the log by
    then), then fails as on a full disk (nothing committed)."""
    real = Store._commit_batch

    def commit(self: Store) -> None:
        monkeypatch.setattr(Store, "_commit_batch", real)
        before()
        batch, self._open_batch = self._open_batch, None
        self._batch_redo, self._batch_pages = [], 0
        assert batch is not None
        batch.abort()
        raise lmdb.Error(f"mdb_txn_commit: {os.strerror(errno.ENOSPC)}")

    monkeypatch.setattr(Store, "_commit_batch", commit)


def copy(store: Store, into: Path) -> Path:
    """The data dir as a ``kill -9`` or a power loss now would leave it (the page cache
    of the log and data.mdb read as they are)."""
    shutil.copytree(store.path, into, ignore=shutil.ignore_patterns("*.lock"))
    return into


def test_a_write_whose_lmdb_commit_fails_after_its_record_is_never_redone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "data", "boot-1")
    try:
        assert isinstance(one(store, create("s0", request_id="r-0")), Outcome)
        written: list[int] = []
        failing_commit(monkeypatch, lambda: written.append(store._ckpt.log.offset))
        refused = one(store, create("lost", request_id="r-lost"))
        assert isinstance(refused, StoreFull) and "no space left" in str(refused)
        assert written and written[0] > 0  # its record was in the log before the commit
        assert isinstance(one(store, create("s1", request_id="r-1")), Outcome)
        lost_power = copy(store, tmp_path / "lost")
    finally:
        store.close()
    again = open_store(lost_power, "boot-2")  # the log replayed: record, cancel, record
    try:
        assert again.wal_stats()["replayed"] == 2
        assert names(again) == ["s0", "s1"]
        retried = one(again, create("lost", request_id="r-lost"))  # never recorded
        assert isinstance(retried, Outcome) and not retried.replayed
    finally:
        again.close()


@pytest.fixture
def killed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data dir of a registry killed after a write's record was logged (and synced),
    before LMDB committed it."""
    store = open_store(tmp_path / "data", "boot-1")
    try:
        assert isinstance(one(store, create("s0", request_id="r-0")), Outcome)

        def kill() -> None:
            store.wait_synced()  # the worst case: the orphan record is durable
            copy(store, tmp_path / "killed")

        failing_commit(monkeypatch, kill)
        one(store, create("orphan", request_id="r-orphan"))
    finally:
        store.close()
    return tmp_path / "killed"


def test_after_a_kill_before_the_commit_the_same_boot_redoes_the_orphan_as_after_a_power_loss(
        killed: Path) -> None:
    store = open_store(killed, "boot-1")  # the log replayed: it may hold what data.mdb lacks
    try:
        assert store.wal_stats()["replayed"] == 2 and names(store) == ["orphan", "s0"]
        retried = one(store, create("orphan", request_id="r-orphan"))
        assert isinstance(retried, Outcome) and retried.replayed
    finally:
        store.close()
    store = open_store(killed, "boot-2")  # a power loss since: the open's generation
    try:
        assert store.wal_stats()["replayed"] == 0 and names(store) == ["orphan", "s0"]
    finally:
        store.close()


def test_after_a_power_loss_before_the_commit_the_orphan_is_redone_with_its_answer(
        killed: Path) -> None:
    store = open_store(killed, "boot-2")
    try:
        assert names(store) == ["orphan", "s0"]  # applied, never acknowledged
        retried = one(store, create("orphan", request_id="r-orphan"))
        assert isinstance(retried, Outcome) and retried.replayed
    finally:
        store.close()


def test_the_records_of_a_generation_skip_the_one_a_cancel_record_follows(
        tmp_path: Path) -> None:
    log = wal.WriteAheadLog(tmp_path / "wal", 4 << 20)
    try:
        ops: list[list[Any]] = [[wal.PUT, "objects", f"k{i}".encode(), b"v"] for i in range(3)]
        for i, op in enumerate(ops):
            assert log.write(wal.encode(op))
            if i == 1:
                log.cancel()
        assert list(log.records(log.generation)) == [ops[0], ops[2]]
    finally:
        log.close()


def test_a_record_whose_sync_fails_stops_the_store_and_the_next_open_recovers_from_the_log(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volatile = tmp_path / "shm"
    volatile.mkdir()
    store = open_store(tmp_path / "data", "boot-1", volatile_dir=volatile)
    try:
        assert isinstance(one(store, create("s0", request_id="r-0")), Outcome)
        log_fd, real, failed = store._ckpt.log.fd, os.fdatasync, []

        def fdatasync(fd: int) -> None:  # the log's next sync fails (EIO), later ones not
            if fd == log_fd and not failed:
                failed.append(fd)
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            real(fd)

        monkeypatch.setattr(os, "fdatasync", fdatasync)
        synced = store.log_sync.synced
        with pytest.raises(WalFailed):  # never acknowledged
            one(store, create("s1", request_id="r-1"))
        assert failed and store._ckpt.failed and list(volatile.iterdir())
        with pytest.raises(WalFailed):  # nothing more is durable, nothing acknowledged
            one(store, create("s2"))
        assert store.log_sync.synced == synced
    finally:
        store.close()  # no checkpoint after the failure
    again = open_store(tmp_path / "data", "boot-1", volatile_dir=volatile)  # same boot
    try:
        assert again.wal_stats()["replayed"] >= 1  # from the log, not the page cache
        assert "s0" in names(again)
    finally:
        again.close()
