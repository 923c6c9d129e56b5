"""Opening the LMDB store behind its write-ahead log: a data file without its log, a disk
too full for the log, what the store reports of its checkpoints and of a recovery."""

from __future__ import annotations

import errno
import logging
import os
import resource
import shutil
import signal
from pathlib import Path
from typing import Any

import lmdb
import pytest

from ecsm_actors.errors import Internal, StoreFull
from ecsm_actors.store import Outcome, Store, wal
from ecsm_actors.store.lmdb_store import WAL_MARK
from tests.store_writes import FakeClock, create, names, one

pytestmark = pytest.mark.timeout(30)


def open_store(path: Path, boot: str = "boot-1", **options: Any) -> Store:
    return Store(path, map_size=16 << 20, clock=FakeClock(), boot_id=lambda: boot,
                 **options)


@pytest.fixture
def written(tmp_path: Path) -> Path:
    """A store written behind the log and closed."""
    store = open_store(tmp_path / "data")
    for i in range(3):
        assert isinstance(one(store, create(f"s{i}")), Outcome)
    store.close()
    return tmp_path / "data"


def test_a_data_file_written_behind_the_log_is_refused_without_it(written: Path) -> None:
    (written / "wal").unlink()
    with pytest.raises(Internal) as refused:
        open_store(written, "boot-2")
    message = str(refused.value)
    assert "\n" not in message
    assert str(written / "wal") in message and "put the wal file back" in message
    with pytest.raises(Internal):  # again: the log the refused open left changes nothing
        open_store(written, "boot-2")


def test_a_data_file_whose_log_has_no_valid_header_is_refused(written: Path) -> None:
    with open(written / "wal", "r+b") as f:
        f.write(bytes(wal.RECORDS_AT))
    with pytest.raises(Internal, match="no valid checkpoint"):
        open_store(written, "boot-2")


def test_a_store_from_before_the_log_opens_with_its_objects(written: Path) -> None:
    (written / "wal").unlink()
    env = lmdb.open(str(written), max_dbs=5)
    with env.begin(write=True, db=env.open_db(b"meta")) as txn:
        assert txn.delete(WAL_MARK)
    env.close()
    store = open_store(written, "boot-2")
    try:
        assert names(store) == ["s0", "s1", "s2"]
        assert isinstance(one(store, create("s3")), Outcome)
    finally:
        store.close()
    store = open_store(written, "boot-3")  # now behind its log
    try:
        assert names(store) == ["s0", "s1", "s2", "s3"]
    finally:
        store.close()


def test_a_disk_too_full_for_the_log_refuses_the_write_and_keeps_serving(
        written: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(written, "boot-2")
    try:
        real = os.posix_fallocate
        full = True

        def fallocate(fd: int, offset: int, length: int) -> None:
            if full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd, offset, length)

        monkeypatch.setattr(wal.os, "posix_fallocate", fallocate)
        store._ckpt.log._allocated = [0, 0]  # as if nothing were allocated yet
        rv = store.resource_version
        refused = one(store, create("s9", request_id="r-9"))
        assert isinstance(refused, StoreFull), refused
        assert "\n" not in str(refused) and "no space left" in str(refused)
        assert str(written / "wal") in str(refused)
        assert store.resource_version == rv and names(store) == ["s0", "s1", "s2"]
        assert store.get("ECSMService", "default", "s1")["metadata"]["name"] == "s1"
        full = False
        again = one(store, create("s9", request_id="r-9"))  # not recorded: applied now
        assert isinstance(again, Outcome) and not again.replayed
    finally:
        store.close()
    store = open_store(written, "boot-3")
    try:
        assert names(store) == ["s0", "s1", "s2", "s9"]
    finally:
        store.close()


def test_a_recovery_is_one_info_line_and_the_checkpoints_are_in_the_stats(
        written: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(written, "boot-2")
    for i in range(4):
        one(store, create(f"t{i}"))
    stats = store.wal_stats()
    assert stats["checkpoints"] >= 1 and stats["bytes"] > 0
    assert stats["lastCheckpointMs"] > 0 and stats["replayed"] == 0
    shutil.copytree(written, tmp_path / "copy", ignore=shutil.ignore_patterns("*.lock"))
    store.close()
    with caplog.at_level(logging.INFO, logger="ecsm_actors.store"):
        again = open_store(tmp_path / "copy", "boot-3")
    try:
        lines = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
        assert len(lines) == 1 and lines[0].endswith(
            "recovered after a reboot: checkpoint txn "
            f"{again._ckpt.found.txnid}, replayed 4 records")
        assert again.wal_stats()["replayed"] == 4
        assert names(again)[-4:] == ["t0", "t1", "t2", "t3"]
    finally:
        again.close()


def test_after_a_failed_sync_of_the_data_file_the_next_open_in_the_same_boot_recovers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed fdatasync may leave pages of data.mdb marked clean but never written (the
    page cache then drops them): the registry stops, and its next start, in the same boot,
    must not trust data.mdb's page cache but recover from the log."""
    volatile = tmp_path / "shm"
    volatile.mkdir()
    store = open_store(tmp_path / "data", volatile_dir=volatile)
    for i in range(3):
        one(store, create(f"s{i}"))
    store.checkpoint()
    for i in range(3, 6):
        one(store, create(f"s{i}"))
    data_fd = store._ckpt._data_fd
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        if fd == data_fd:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    with pytest.raises(OSError):
        store.checkpoint()
    monkeypatch.setattr(os, "fdatasync", real)
    store.close()  # no checkpoint after the failure: the fds and the lock let go
    again = open_store(tmp_path / "data", volatile_dir=volatile)  # the same boot
    try:
        assert again.wal_stats()["replayed"] == 3
        assert names(again) == [f"s{i}" for i in range(6)]
        assert list(volatile.iterdir()) == []  # trusted again once recovered
    finally:
        again.close()


@pytest.mark.parametrize(("full", "commit_interval"),
                         [("wal", 0.0), ("data.mdb", 0.0), ("wal", 3600.0),
                          ("data.mdb", 3600.0)])
def test_when_the_files_cannot_grow_writes_are_refused_with_store_full_and_reads_go_on(
        tmp_path: Path, full: str, commit_interval: float) -> None:
    """A real limit on the files' growth (the process's file size limit: a full disk as
    far as the store can tell): the log (``wal``: its next MiB) or LMDB's file cannot grow,
    the write is refused, nothing acknowledged is lost, and once there is room writes go
    on — also with the writes gathered in a batch not committed to data.mdb yet."""
    store = open_store(tmp_path / "data", "boot-1", commit_interval=commit_interval)
    acknowledged: list[str] = []
    if full == "data.mdb":  # the log's first MiB allocated: LMDB's file is first to grow
        assert isinstance(one(store, create("first")), Outcome)
        acknowledged.append("first")
    limit = max(os.path.getsize(tmp_path / "data" / name) for name in ("data.mdb", "wal"))
    refused: StoreFull | None = None
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit + (256 << 10), old_limit[1]))
    try:
        for i in range(5000):
            result = one(store, create(f"s{i}"))
            if isinstance(result, StoreFull):
                refused = result
                break
            assert isinstance(result, Outcome), result
            acknowledged.append(f"s{i}")
        assert refused is not None and "\n" not in str(refused), refused
        assert "no space left" in str(refused)
        assert str(tmp_path / "data" / full) in str(refused), refused
        assert isinstance(one(store, create("again")), StoreFull)
        assert names(store) == sorted(acknowledged)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)
    try:
        assert isinstance(one(store, create("after")), Outcome)
    finally:
        store.close()
    store = open_store(tmp_path / "data", "boot-2")
    try:
        assert names(store) == sorted([*acknowledged, "after"])
    finally:
        store.close()
