"""The LMDB store's checkpoint thread: one for the store's life, handed each checkpoint
without the loop waiting, data.mdb written back in chunks before its fdatasync, a failure
in it raised on the loop as before; and the map's pages let go only when writes pause."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.store import Outcome, Store, checkpoint, lmdb_store
from ecsm_actors.store.wal import WalFailed
from tests.store_writes import FakeClock, create, one

pytestmark = pytest.mark.timeout(30)


def open_store(path: Path, **options: Any) -> Store:
    options.setdefault("checkpoint_interval", 0.0)  # due at every idle turn
    return Store(path, map_size=16 << 20, clock=FakeClock(), boot_id=lambda: "boot-1",
                 **options)


def checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "store-checkpoint"]


def background_checkpoint(store: Store, name: str) -> None:
    """A write, then a checkpoint begun by the idle hook, its sync waited for and the
    checkpoint finished by the next write."""
    assert isinstance(one(store, create(name)), Outcome)
    store.release_pages()  # due (interval 0): begun in the background
    pending = store._ckpt._pending  # noqa: SLF001 - the checkpoint in flight is the point
    assert pending is not None and pending.done.wait(10)
    assert isinstance(one(store, create(f"{name}-after")), Outcome)
    assert store._ckpt._pending is None  # noqa: SLF001


def test_one_checkpoint_thread_serves_the_store_and_none_is_left_after_close(
        tmp_path: Path) -> None:
    before = set(checkpoint_threads())
    store = open_store(tmp_path / "data")
    try:
        started = set(checkpoint_threads()) - before
        assert len(started) == 1  # started with the store, before any checkpoint is due
        for i in range(3):
            background_checkpoint(store, f"s{i}")
        assert set(checkpoint_threads()) - before == started  # the same thread each time
        assert store.wal_stats()["checkpoints"] >= 3
    finally:
        store.close()
    assert set(checkpoint_threads()) - before == set()  # stopped and joined at close


def test_the_thread_writes_data_back_in_chunks_before_its_fdatasync(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "data")
    try:
        data_fd = store._ckpt._data_fd  # noqa: SLF001
        calls: list[str] = []
        real_write_back, real_fdatasync = checkpoint.write_back, os.fdatasync

        def write_back(fd: int, chunk: int = checkpoint.WRITEBACK_CHUNK) -> None:
            if fd == data_fd:
                calls.append(f"write_back {chunk}")
            real_write_back(fd, chunk)

        def fdatasync(fd: int) -> None:
            if fd == data_fd:
                calls.append("fdatasync")
            real_fdatasync(fd)

        monkeypatch.setattr(checkpoint, "write_back", write_back)
        monkeypatch.setattr(os, "fdatasync", fdatasync)
        background_checkpoint(store, "s")
        assert calls == [f"write_back {checkpoint.WRITEBACK_CHUNK}", "fdatasync"]
    finally:
        store.close()


def test_the_loop_does_not_wait_for_the_thread_and_its_failure_stops_the_store_as_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    volatile = tmp_path / "shm"
    volatile.mkdir()
    store = open_store(tmp_path / "data", volatile_dir=volatile)
    data_fd = store._ckpt._data_fd  # noqa: SLF001
    syncing, fail = threading.Event(), threading.Event()
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        if fd == data_fd:
            syncing.set()
            assert fail.wait(10)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    assert isinstance(one(store, create("a")), Outcome)
    store.release_pages()  # begins the checkpoint and returns: its sync hangs meanwhile
    assert syncing.wait(10)
    assert isinstance(one(store, create("b")), Outcome)  # durable, acknowledged meanwhile
    fail.set()
    deadline = time.monotonic() + 10
    with pytest.raises(WalFailed):
        while time.monotonic() < deadline:  # the next idle turn finds the sync failed
            store.release_pages()
            time.sleep(0.01)
    monkeypatch.setattr(os, "fdatasync", real)
    assert len(list(volatile.iterdir())) == 1  # the next open recovers from the log
    store.close()
    assert checkpoint_threads() == []


def test_the_maps_pages_are_let_go_when_writes_pause_and_only_now_and_then_while_they_go_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "data", checkpoint_interval=3600.0)
    released: list[int] = []
    monkeypatch.setattr(store._pages, "release", released.append)  # noqa: SLF001
    try:
        store.release_pages()
        released.clear()
        for i in range(lmdb_store.RELEASE_WHILE_WRITING):  # a heartbeat after each write
            one(store, create(f"s{i}"))
            store.release_pages()
        assert len(released) == 1  # the tenth call only
        store.release_pages()  # no write since the last call: idle for real
        store.release_pages()
        assert len(released) == 3
    finally:
        store.close()


def test_the_last_checkpoints_time_is_its_sync_not_the_wait_until_the_loop_noticed_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(tmp_path / "data")
    try:
        assert isinstance(one(store, create("s0")), Outcome)
        store.release_pages()  # due (interval 0): begun in the background
        pending = store._ckpt._pending  # noqa: SLF001 - the checkpoint in flight is the point
        assert pending is not None and pending.done.wait(10)
        later = time.monotonic() + 60.0  # the loop comes back to it a minute later
        monkeypatch.setattr(checkpoint.time, "monotonic", lambda: later)
        store.release_pages()  # finishes it
        assert store._ckpt._pending is None  # noqa: SLF001
        assert 0 < store.wal_stats()["lastCheckpointMs"] < 30_000
    finally:
        monkeypatch.undo()
        store.close()
