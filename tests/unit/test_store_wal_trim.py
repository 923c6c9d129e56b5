"""The write-ahead log gives back the blocks no recovery reads once writes pause after a
checkpoint, and a power loss right after (or before) the punch still brings back every
acknowledged write (real LMDB, a real log on the test's filesystem)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.store import Store, wal
from tests.store_writes import FakeClock, batch, create, one
from tests.unit.test_store_power_loss import State, accepted, state_after_boot, torn_data

pytestmark = pytest.mark.timeout(60)

#: A log of the smallest size: two record regions of 1 MiB.
WAL_SIZE = wal.MIN_SIZE


def open_store(path: Path, boot: str, **options: Any) -> Store:
    return Store(path, map_size=32 << 20, clock=FakeClock(), boot_id=lambda: boot,
                 wal_size=WAL_SIZE, checkpoint_interval=0.0, **options)


def allocated(path: Path) -> int:
    return os.stat(path / "wal").st_blocks * 512


def fill_both_regions(store: Store, path: Path, prefix: str) -> None:
    """Batches of creates until both record regions hold blocks (checkpoints between)."""
    region = store._ckpt.log.region
    for i in range(400):
        accepted(one(store, batch(*(create(f"{prefix}{i}-{j}") for j in range(20)))))
        if allocated(path) > wal.RECORDS_AT + region + wal.CHUNK:
            return
    raise AssertionError("the log never used both regions")


def go_idle(store: Store) -> None:
    """Idle turns until the checkpoint begun at the first one is complete, then one more."""
    deadline = time.monotonic() + 10
    store.release_pages()
    while (pending := store._ckpt._pending) is not None:
        assert time.monotonic() < deadline, "the checkpoint never completed"
        pending.done.wait(0.05)
        store.release_pages()
    store.release_pages()


def test_once_writes_pause_after_a_checkpoint_the_log_keeps_blocks_only_for_its_records(
        tmp_path: Path) -> None:
    store = open_store(tmp_path, "boot-1")
    try:
        fill_both_regions(store, tmp_path, "s")
        go_idle(store)
        assert allocated(tmp_path) <= wal.RECORDS_AT + 4096
        assert os.stat(tmp_path / "wal").st_size >= wal.RECORDS_AT + store._ckpt.log.region
        # Writes go on, their space allocated again.
        for i in range(20):
            accepted(one(store, create(f"after-{i}")))
        assert store.get("ECSMService", "default", "after-19")["metadata"]["name"] == "after-19"
    finally:
        store.close()
    store = open_store(tmp_path, "boot-1")
    try:
        assert store.get("ECSMService", "default", "after-19")["metadata"]["name"] == "after-19"
    finally:
        store.close()


@pytest.mark.parametrize("punched", [True, False], ids=["punch-durable", "punch-lost"])
@pytest.mark.parametrize("seed", range(3))
def test_a_power_loss_right_after_the_punch_loses_no_acknowledged_write(
        tmp_path: Path, punched: bool, seed: int) -> None:
    path = tmp_path / "store"
    store = open_store(path, "boot-1")
    try:
        fill_both_regions(store, path, "s")
        store.release_pages()  # begins the checkpoint
        pending = store._ckpt._pending
        assert pending is not None and pending.done.wait(10)
        durable = (path / "data.mdb").read_bytes()
        log_trim, images = store._ckpt.log.trim, []

        def trim() -> bool:
            images.append((path / "wal").read_bytes())  # the header durable, no punch yet
            return log_trim()

        store._ckpt.log.trim = trim  # type: ignore[method-assign]
        go_idle(store)  # finishes it, then punches
        assert len(images) == 1
        before_punch = images[0]
        assert allocated(path) <= wal.RECORDS_AT + 4096
        after_punch = (path / "wal").read_bytes()
        # Acknowledged after the punch, into blocks allocated again; no checkpoint since.
        for i in range(10):
            accepted(one(store, create(f"after-{i}", request_id=f"r-{i}")))
        acknowledged = State.of(store)
        current, log = (path / "data.mdb").read_bytes(), (path / "wal").read_bytes()
    finally:
        store.close()
    # The power loss right after the punch: data.mdb as the checkpoint synced it.
    torn_data(durable, durable, seed, tmp_path / "at-punch")
    (tmp_path / "at-punch" / "wal").write_bytes(after_punch if punched else before_punch)
    at_punch = open_store(tmp_path / "at-punch", "boot-2")
    try:
        names = {o["metadata"]["name"] for o in at_punch.list_objects("ECSMService")[0]}
        assert names == set(acknowledged.objects) - {f"after-{i}" for i in range(10)}
    finally:
        at_punch.close()
    # ... and after the writes that followed it: a torn data.mdb, the log as synced.
    torn_data(durable, current, seed, tmp_path / "later", log)
    assert state_after_boot(open_store, tmp_path / "later") == acknowledged


def test_where_blocks_cannot_be_punched_the_log_keeps_them_and_writes_go_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal, "punch", lambda fd, offset, length: False)
    store = open_store(tmp_path, "boot-1")
    try:
        fill_both_regions(store, tmp_path, "s")
        kept = allocated(tmp_path)
        go_idle(store)
        assert not store._ckpt.log.can_trim
        assert allocated(tmp_path) >= kept
        accepted(one(store, create("after")))
    finally:
        store.close()
