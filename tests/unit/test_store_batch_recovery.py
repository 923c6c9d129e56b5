"""A store whose writes are committed in batches (``commit_interval``) on a full disk and
after a ``kill -9``: the open replays the log's records onto the last checkpoint within
no more of the disk than the run that logged them took (every acknowledged write back),
a start after a clean stop says no recovery, and data.mdb's blocks reserved for a batch
count from its end as committed by any transaction (an idle prune of the request window
too), so a full disk refuses the write before its record, never at the batch's commit
(real LMDB, the files as the kernel holds them, the process's file size limit as the
full disk)."""

from __future__ import annotations

import logging
import os
import random
import resource
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.errors import StoreFull
from ecsm_actors.store import Outcome, Store, wal
from tests.store_writes import NOW, FakeClock, create, names, one

pytestmark = pytest.mark.timeout(30)


def open_store(path: Path, **options: Any) -> Store:
    return Store(path, map_size=64 << 20, clock=FakeClock(), boot_id=lambda: "boot-1",
                 checkpoint_interval=3600, commit_interval=3600, **options)


def killed(store: Store, into: Path) -> Path:
    """The store's files as a ``kill -9`` leaves them (its lock let go)."""
    shutil.copytree(store.path, into, ignore=shutil.ignore_patterns("*.lock"))
    return into


@contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """The process's files cannot grow past ``limit`` bytes (a full disk)."""
    old_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    old_limit = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, old_limit[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, old_limit)
        signal.signal(signal.SIGXFSZ, old_handler)


def test_a_kill_on_a_full_disk_opens_again_with_every_acknowledged_write(
        tmp_path: Path) -> None:
    """data.mdb filled up to the process's file size limit (a full disk as far as the
    store can tell) by writes committed in batches since the checkpoint, then a kill: the
    next open replays them onto the checkpoint within the same limit."""
    store = open_store(tmp_path / "data", wal_size=wal.MIN_SIZE)
    acknowledged = ["first"]
    try:
        assert isinstance(one(store, create("first")), Outcome)
        store.checkpoint()
        fd = os.open(store.path / "wal", os.O_RDWR)  # the log never the one to grow
        try:
            os.posix_fallocate(fd, 0, wal.MIN_SIZE)
        finally:
            os.close(fd)
        with file_size_limit(os.path.getsize(store.path / "wal")):
            for i in range(5000):
                result = one(store, create(f"s{i}", request_id=f"r-{i}"))
                if isinstance(result, StoreFull):
                    break
                assert isinstance(result, Outcome), result
                acknowledged.append(f"s{i}")
            assert len(acknowledged) > 100 and store.wal_stats()["bytes"] > 0
            again = open_store(killed(store, tmp_path / "killed"), wal_size=wal.MIN_SIZE)
            try:
                assert names(again) == sorted(acknowledged)
                retried = one(again, create("s7", request_id="r-7"))
                assert isinstance(retried, Outcome) and retried.replayed
            finally:
                again.close()
    finally:
        store.close()


def test_only_a_start_with_records_to_redo_in_the_same_boot_says_it_recovered(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = open_store(tmp_path / "data")
    for i in range(3):
        assert isinstance(one(store, create(f"s{i}")), Outcome)
    copy = killed(store, tmp_path / "killed")
    store.close()
    with caplog.at_level(logging.INFO, logger="ecsm_actors.store"):
        open_store(tmp_path / "data").close()  # after a clean stop: nothing to redo
        assert not [r for r in caplog.records if "recovered" in r.getMessage()]
        again = open_store(copy)
    try:
        lines = [r.getMessage() for r in caplog.records if "recovered" in r.getMessage()]
        assert len(lines) == 1 and lines[0].endswith("recovered in the same boot: "
                                                     f"checkpoint txn {again._ckpt.found.txnid}"
                                                     ", replayed 3 records")
        assert names(again) == ["s0", "s1", "s2"]
    finally:
        again.close()


def test_after_an_idle_prune_grew_the_data_file_a_full_disk_refuses_the_next_write(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "data", wal_size=wal.MIN_SIZE)
    rng = random.Random(1)
    store.window.begin()  # 20,000 request records, their ids spread over the leaves
    txn = wal.Recording(store._env, store._env.begin(write=True), store._names, None)  # noqa: SLF001
    for _ in range(20_000):
        store.window.record(txn, f"req-{rng.getrandbits(64):x}",
                            {"op": "CREATE", "key": "ECSMService/default/x", "rv": 1}, NOW)
    txn.commit()
    store.window.committed()
    store.close()
    store = open_store(tmp_path / "data", wal_size=wal.MIN_SIZE, request_window=10)
    try:
        fd = os.open(store.path / "wal", os.O_RDWR)  # the log never the one to grow
        try:
            os.posix_fallocate(fd, 0, wal.MIN_SIZE)
        finally:
            os.close(fd)
        page = store._page_size  # noqa: SLF001
        before = os.path.getsize(store.path / "data.mdb")
        store.release_pages()  # the window pruned in a transaction of its own
        end = os.path.getsize(store.path / "data.mdb")
        assert end - before > 128 * page  # more than the reserve's slack
        assert end > os.path.getsize(store.path / "wal")
        with file_size_limit(end + 8 * page):
            refused = one(store, create("next", request_id="r-next"))
            assert isinstance(refused, StoreFull), refused
            store.flush()  # nothing acknowledged to commit, nothing fails
            assert names(store) == []  # reads go on
        assert isinstance(one(store, create("next", request_id="r-next")), Outcome)
    finally:
        store.close()
