"""A failed sync stops the store's durability for good, whichever path met it: the sync of
the request window's deferred redo before a checkpoint's snapshot, the sync of data.mdb
by a checkpoint the store asked for itself (a full map, the environment opened again)
(real LMDB, the kernel's syncs failing where the test says)."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ecsm_actors.errors import AlreadyExists
from ecsm_actors.store import Outcome, Store
from ecsm_actors.store.wal import WalFailed
from tests.store_writes import FakeClock, create, one

pytestmark = pytest.mark.timeout(30)


def open_store(path: Path) -> Store:
    volatile = path.parent / "shm"
    volatile.mkdir(exist_ok=True)
    return Store(path, map_size=16 << 20, clock=FakeClock(), boot_id=lambda: "boot-1",
                 checkpoint_interval=3600, volatile_dir=volatile)


def failing_sync_of(monkeypatch: pytest.MonkeyPatch, fd: Callable[[], int | None],
                    err: int) -> list[int]:
    """The next ``fdatasync`` of the descriptor ``fd()`` fails with ``err`` (once); the
    failures are listed in what is returned."""
    real, failed = os.fdatasync, []

    def fdatasync(n: int) -> None:
        if not failed and n == fd():
            failed.append(n)
            raise OSError(err, os.strerror(err))
        real(n)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return failed


def test_a_failed_sync_of_the_window_redo_before_a_snapshot_fails_the_checkpoint(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "data")
    try:
        assert isinstance(one(store, create("s0", request_id="c-0")), Outcome)
        refused = one(store, create("s0", request_id="c-again"))  # window only: deferred
        assert isinstance(refused, AlreadyExists)
        generation = store._ckpt.log.generation
        failed = failing_sync_of(monkeypatch, lambda: store._ckpt.log.fd, errno.ENOSPC)
        with pytest.raises(OSError):  # the sync's pages may be lost: no header follows
            store.checkpoint()
        assert failed and store._ckpt.failed and store._ckpt.log.generation == generation
    finally:
        store.close()


def test_after_a_failed_checkpoint_no_checkpoint_follows_and_no_write_is_acknowledged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "data")
    try:
        assert isinstance(one(store, create("s0", request_id="c-0")), Outcome)
        generation = store._ckpt.log.generation
        failed = failing_sync_of(monkeypatch, lambda: store._ckpt._data_fd, errno.EIO)
        with pytest.raises(OSError):  # as after a full map: the store asked for it
            store.checkpoint()
        assert failed and store._ckpt.failed
        # The page cache of data.mdb is no proof now: a sync that succeeds after the EIO
        # must not make a checkpoint of it, nor may the log's syncs acknowledge writes.
        with pytest.raises((OSError, WalFailed)):
            store.checkpoint()
        assert store._ckpt.log.generation == generation
        with pytest.raises(WalFailed):
            one(store, create("s1", request_id="c-1"))
    finally:
        store.close()

