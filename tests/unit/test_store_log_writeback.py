"""The write-ahead log's record on its way to the disk: its pages are handed to the disk as
it is written (their write-back runs while LMDB commits and the replies are made), and the
turn's sync is made by its wait, on the caller's thread, one ``fdatasync`` for every
record written before it; a disk that refuses the write-back stops the store before the
write is acknowledged (real LMDB, the page cache as the kernel reports it)."""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors.store import Outcome, Store, wal
from ecsm_actors.store.wal import MIN_SIZE, WalFailed, WriteAheadLog
from tests.store_writes import FakeClock, create, one

pytestmark = pytest.mark.timeout(30)

#: cachestat(2) (Linux 6.5), the same number on every architecture.
_CACHESTAT = 451


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Stat(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]


def dirty_pages(fd: int, offset: int, length: int) -> int:
    """Pages of ``fd``'s range that are dirty in the page cache (skip without cachestat)."""
    call = ctypes.CDLL(None, use_errno=True).syscall
    stat = _Stat()
    if call(_CACHESTAT, fd, ctypes.byref(_Range(offset, length)), ctypes.byref(stat), 0):
        pytest.skip(f"no cachestat here: {os.strerror(ctypes.get_errno())}")
    return int(stat.nr_dirty)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[WriteAheadLog]:
    log = WriteAheadLog(tmp_path / "wal", MIN_SIZE)
    # The filesystem must keep dirty pages and write them back when asked (not tmpfs).
    probe = MIN_SIZE - 4096
    os.pwrite(log.fd, b"probe", probe)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64,
                                     ctypes.c_uint]
    if libc.sync_file_range(log.fd, probe, 5, 2) or dirty_pages(log.fd, probe, 4096):
        pytest.skip("this filesystem does not write its dirty pages back when asked")
    yield log
    log.close()


def test_a_record_is_handed_to_the_disk_as_it_is_written_not_left_dirty_for_its_sync(
        log: WriteAheadLog) -> None:
    start = log.offset
    assert log.write(b"x" * 3000)
    assert dirty_pages(log.fd, start, log.offset - start) == 0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", map_size=16 << 20, clock=FakeClock(),
              boot_id=lambda: "boot-1", checkpoint_interval=3600,
              volatile_dir=tmp_path)
    yield s
    s.close()


def test_a_turn_s_records_are_synced_by_its_wait_on_the_caller_s_thread_at_once(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    for name in ("s0", "s1"):
        assert isinstance(store.execute_unsynced([create(name, request_id=name)])[0], Outcome)
    syncs = store.log_sync
    assert synced == [] and syncs.synced < syncs.requested
    store.wait_synced()
    assert synced == [store._ckpt.log.fd] and syncs.synced == syncs.requested


def test_a_disk_that_refuses_the_record_s_write_back_stops_the_store_unacknowledged(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(fd: int, offset: int, length: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(wal, "start_writeback", refused)
    with pytest.raises(WalFailed):
        one(store, create("s0", request_id="r-0"))
    assert store._ckpt.failed


def test_after_a_refused_write_back_no_later_sync_acknowledges_a_write(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    real = wal.start_writeback

    def refused_once(fd: int, offset: int, length: int) -> None:
        monkeypatch.setattr(wal, "start_writeback", real)  # the disk answers again after
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(wal, "start_writeback", refused_once)
    with pytest.raises(WalFailed):
        one(store, create("s0", request_id="r-0"))
    synced = store.log_sync.synced
    with pytest.raises(WalFailed):  # its pages may be lost: nothing more is acknowledged
        one(store, create("s1", request_id="r-1"))
    assert store.log_sync.synced == synced


def test_a_refused_write_back_of_the_deferred_redo_fails_the_checkpoint_and_every_later_write(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(one(store, create("s0", request_id="r-0")), Outcome)
    # A refusal writes only the request window: its redo is deferred to the next record,
    # or to a record of its own before the next checkpoint's snapshot.
    assert not isinstance(one(store, create("s0", request_id="r-1")), Outcome)
    assert store._ckpt._deferred
    written: list[int] = []

    def refused(fd: int, offset: int, length: int) -> None:
        written.append(offset)  # the record is in the log: only its pages were refused
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(wal, "start_writeback", refused)
    with pytest.raises(OSError):
        store.checkpoint()
    assert written
    synced = store.log_sync.synced
    with pytest.raises(WalFailed):  # its pages may be lost: nothing more is acknowledged
        one(store, create("s1", request_id="r-2"))
    assert store.log_sync.synced == synced
