"""A write that changed no object (a refusal, a write that changed nothing) is answered
without an ``fdatasync`` of its request window record: the record leads the next write's
log record, or a record of its own before the next checkpoint's snapshot, so after a power
loss a retry of its request is still answered as it was (real LMDB, the log as on disk)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.errors import Conflict
from ecsm_actors.protocol import Op
from ecsm_actors.store import Outcome, Store, Write
from tests.store_writes import FakeClock, create, one

pytestmark = pytest.mark.timeout(30)


def open_store(path: Path, boot: str = "boot-1", **options: Any) -> Store:
    return Store(path, map_size=16 << 20, clock=FakeClock(), boot_id=lambda: boot,
                 **options)


def update(store: Store, name: str, request_id: str, *, replicas: int | None = None,
           stale: bool = False) -> Write:
    """UPDATE of ``name`` (its replicas set when given; at a past version when ``stale``)."""
    obj = store.get("ECSMService", "default", name)
    if replicas is not None:
        obj["spec"]["deploymentStrategy"]["replicas"] = replicas
    if stale:
        obj["metadata"]["resourceVersion"] -= 1
    return Write(op=Op.UPDATE, fields={"object": obj, "requestId": request_id})


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The descriptors ``os.fdatasync`` is called on (the log's syncs among them), from
    now on."""
    calls: list[int] = []
    real = os.fdatasync

    def fdatasync(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return calls


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "data", checkpoint_interval=3600)
    assert isinstance(one(s, create("s0", request_id="c-0")), Outcome)
    s.checkpoint()
    yield s
    s.close()


def test_a_refusal_and_a_write_that_changes_nothing_are_answered_without_a_sync(
        store: Store, syncs: list[int]) -> None:
    refused = one(store, update(store, "s0", "r-conflict", replicas=5, stale=True))
    assert isinstance(refused, Conflict)
    unchanged = one(store, update(store, "s0", "r-same"))
    assert isinstance(unchanged, Outcome) and not unchanged.events
    assert syncs == []
    written = one(store, update(store, "s0", "r-write", replicas=4))
    assert isinstance(written, Outcome) and len(written.events) == 1
    assert len(syncs) == 1  # one record: the write's, led by the two window records


def recorded(store: Store, request_id: str) -> dict[str, Any] | None:
    """The request window's record of ``request_id``."""
    with store._env.begin() as txn:
        return store.window.lookup(txn, request_id, FakeClock()())


def test_after_a_power_loss_the_window_records_come_back_with_the_next_write(
        store: Store, tmp_path: Path) -> None:
    one(store, update(store, "s0", "r-conflict", replicas=5, stale=True))
    assert isinstance(one(store, create("s1", request_id="c-1")), Outcome)
    shutil.copytree(store.path, tmp_path / "lost", ignore=shutil.ignore_patterns("*.lock"))
    again = open_store(tmp_path / "lost", "boot-2")  # recovered from the log
    try:
        assert again.wal_stats()["replayed"] == 1  # one record: the window's and the write's
        conflict = recorded(again, "r-conflict")
        assert conflict is not None and conflict["error"]["code"] == "Conflict"
        assert recorded(again, "c-1") is not None
    finally:
        again.close()


def test_window_records_not_yet_logged_are_logged_before_a_checkpoint_takes_its_snapshot(
        tmp_path: Path) -> None:
    store = open_store(tmp_path / "data", checkpoint_interval=0)
    try:
        assert isinstance(one(store, create("s0", request_id="c-0")), Outcome)
        assert isinstance(one(store, update(store, "s0", "r-conflict", stale=True)), Conflict)
        store.release_pages()  # a checkpoint begins; the power is lost before its header
        shutil.copytree(store.path, tmp_path / "lost", ignore=shutil.ignore_patterns("*.lock"))
    finally:
        store.close()
    again = open_store(tmp_path / "lost", "boot-2")
    try:
        assert again.wal_stats()["replayed"] == 2  # the create's record, the window's
        conflict = recorded(again, "r-conflict")
        assert conflict is not None and conflict["error"]["code"] == "Conflict"
    finally:
        again.close()
