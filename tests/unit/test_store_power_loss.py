"""A power loss under the LMDB store: every acknowledged write comes back from the
write-ahead log, whatever subset of the pages written since the last checkpoint reached
the disk (real LMDB; the torn data file is built from the durable image and the pages
that changed since, seeded)."""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.errors import RegistryError
from ecsm_actors.protocol import Op
from ecsm_actors.store import Outcome, Store, Write
from ecsm_actors.store.checkpoint import Checkpoints
from ecsm_actors.store.wal import SLOT
from tests.store_writes import FakeClock, batch, create, one

pytestmark = pytest.mark.timeout(60)

PAGE = 4096
SEEDS = range(20)


def open_store(path: Path, boot: str, **options: Any) -> Store:
    return Store(path, map_size=16 << 20, clock=FakeClock(), boot_id=lambda: boot,
                 **options)


def update(store: Store, name: str, replicas: int) -> Write:
    obj = store.get("ECSMService", "default", name)
    obj["spec"]["deploymentStrategy"]["replicas"] = replicas
    return Write(op=Op.UPDATE, fields={"object": obj})


def delete(name: str, request_id: str | None = None) -> Write:
    fields: dict[str, Any] = {"kind": "ECSMService", "namespace": "default", "name": name}
    if request_id:
        fields["requestId"] = request_id
    return Write(op=Op.DELETE, fields=fields)


@dataclass(frozen=True)
class State:
    objects: dict[str, dict[str, Any]]
    events: bytes
    resource_version: int

    @classmethod
    def of(cls, store: Store) -> State:
        objects = {o["metadata"]["name"]: o for o in store.list_objects("ECSMService")[0]}
        return cls(objects, store.watch_since_raw(0).data, store.resource_version)


@dataclass(frozen=True)
class Scene:
    """What was durable at the checkpoint, what the writes after it left, and the
    state every acknowledged write made."""

    data_dir: Path
    durable: bytes
    current: bytes
    acknowledged: State
    torn_from: int  # offset of the last record, never acknowledged in the torn scene


def accepted(result: Outcome | RegistryError) -> Outcome:
    assert isinstance(result, Outcome), result
    return result


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    path = tmp_path_factory.mktemp("store")
    store = open_store(path, "boot-1")
    for i in range(30):
        accepted(one(store, create(f"s{i}", request_id=f"r-{i}")))
    store.checkpoint()
    durable = (path / "data.mdb").read_bytes()
    # Acknowledged after the checkpoint: creates, updates, deletes, BATCHes, requestIds.
    for i in range(30, 60):
        accepted(one(store, create(f"s{i}", request_id=f"r-{i}")))
    for i in range(0, 20):
        accepted(one(store, update(store, f"s{i}", 3 + i % 4)))
    for i in range(20, 26):
        accepted(one(store, delete(f"s{i}", request_id=f"d-{i}")))
    accepted(one(store, batch(create("b1"), create("b2"), update(store, "s40", 9),
                              atomic=True, request_id="batch-1")))
    refused = accepted(one(store, batch(create("b3"), create("b1"), atomic=True)))
    assert refused.result["results"][0]["error"]["code"] == "Aborted"
    results = store.execute([create(f"g{i}") for i in range(5)] + [update(store, "s50", 7)])
    assert all(isinstance(r, Outcome) for r in results)
    acknowledged = State.of(store)
    torn_from = store._ckpt.log.offset
    accepted(one(store, create("never-acknowledged")))  # its record will be torn
    yield Scene(path, durable, (path / "data.mdb").read_bytes(), acknowledged, torn_from)
    store.close()


def torn_data(durable: bytes, current: bytes, seed: int, into: Path,
              log: bytes | None = None) -> None:
    """The data file a power loss may leave: the durable one plus a random subset of the
    pages written since (some only as zeros); beside it ``log`` as the log synced."""
    rng = random.Random(seed)
    image = bytearray(durable.ljust(len(current), b"\0"))
    for at in range(0, len(current), PAGE):
        new = current[at:at + PAGE]
        if new != durable[at:at + PAGE] and rng.random() < 0.5:
            image[at:at + PAGE] = bytes(len(new)) if rng.random() < 0.2 else new
    into.mkdir()
    (into / "data.mdb").write_bytes(bytes(image))
    if log is not None:
        (into / "wal").write_bytes(log)


def state_after_boot(opener: Callable[[Path, str], Store], path: Path,
                     boot: str = "boot-2") -> State:
    """The state of the store at ``path`` opened by ``opener`` after another boot
    (what its recovery made), the store closed again."""
    store = opener(path, boot)
    try:
        return State.of(store)
    finally:
        store.close()


def torn_image(scene: Scene, seed: int, into: Path) -> None:
    """The data dir a power loss may leave: a torn data file, and the log as synced (its
    last record, never acknowledged, torn)."""
    torn_data(scene.durable, scene.current, seed, into)
    shutil.copyfile(scene.data_dir / "wal", into / "wal")
    with open(into / "wal", "r+b") as f:
        f.seek(scene.torn_from + 20)
        f.write(b"\xff\x00\xff")


@pytest.mark.parametrize("seed", SEEDS)
def test_after_a_power_loss_every_acknowledged_write_is_back(scene: Scene, seed: int,
                                                            tmp_path: Path) -> None:
    torn_image(scene, seed, tmp_path / "data")
    store = open_store(tmp_path / "data", "boot-2")
    try:
        assert State.of(store) == scene.acknowledged
        again = accepted(one(store, create("s35", request_id="r-35")))
        assert again.replayed and again.result["metadata"]["name"] == "s35"
        again = accepted(one(store, delete("s21", request_id="d-21")))
        assert again.replayed
        assert accepted(one(store, batch(create("b1"), create("b2"), update(store, "s40", 9),
                                         atomic=True, request_id="batch-1"))).replayed
        fresh = accepted(one(store, create("fresh")))
        assert fresh.result["metadata"]["resourceVersion"] == (
            scene.acknowledged.resource_version + 1)
        events, rv = store.watch_since(scene.acknowledged.resource_version - 3)
        assert [e.seq for e in events] == list(range(rv - 3, rv + 1))
    finally:
        store.close()


def test_the_recovered_store_is_whole_when_opened_again_after_another_boot(
        scene: Scene, tmp_path: Path) -> None:
    torn_image(scene, 1, tmp_path / "data")
    open_store(tmp_path / "data", "boot-2").close()
    store = open_store(tmp_path / "data", "boot-3")  # replays nothing twice
    try:
        assert State.of(store) == scene.acknowledged
    finally:
        store.close()


def test_without_the_log_the_same_torn_files_lose_acknowledged_writes(
        scene: Scene, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: opened as they stand (no meta pages put back, nothing replayed), the
    torn files miss writes or are unreadable."""
    monkeypatch.setattr(Checkpoints, "restore_meta", lambda self: None)
    damaged = 0
    for seed in SEEDS:
        # Only the images whose meta pages are the durable ones: LMDB would read any
        # other as it stands, and a torn B-tree may crash it rather than raise.
        rng_image = tmp_path / f"data-{seed}"
        torn_image(scene, seed, rng_image)
        image = (rng_image / "data.mdb").read_bytes()
        if image[:2 * PAGE] != scene.durable[:2 * PAGE]:
            continue
        store = open_store(rng_image, "boot-1")
        try:
            damaged += State.of(store) != scene.acknowledged
        except RegistryError:
            damaged += 1
        finally:
            store.close()
    assert damaged >= 3


@dataclass(frozen=True)
class Background:
    """A checkpoint whose sync of data.mdb ran while writes went on: what the sync made
    durable, the files and state after the first write that finished the checkpoint
    (``first``), and after the writes that followed (``last``)."""

    durable: bytes
    first: tuple[bytes, bytes, State]  # data.mdb, wal, state
    last: tuple[bytes, bytes, State]


def files(path: Path, store: Store) -> tuple[bytes, bytes, State]:
    return (path / "data.mdb").read_bytes(), (path / "wal").read_bytes(), State.of(store)


@pytest.fixture(scope="module")
def background(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Background]:
    path = tmp_path_factory.mktemp("background")
    store = open_store(path, "boot-1", checkpoint_interval=0.0)
    for i in range(20):
        accepted(one(store, create(f"a{i}", request_id=f"r-a{i}")))
    store.checkpoint()
    for i in range(20):
        accepted(one(store, update(store, f"a{i}", 5)))
        accepted(one(store, create(f"b{i}")))
    store.release_pages()  # due: begins a checkpoint, its sync in a thread
    pending = store._ckpt._pending
    assert pending is not None
    deadline = time.monotonic() + 10
    while not pending.done.is_set():
        assert time.monotonic() < deadline
        pending.done.wait(0.05)
    durable = (path / "data.mdb").read_bytes()
    accepted(one(store, create("c0", request_id="r-c0")))  # finishes the checkpoint
    assert store._ckpt._pending is None
    first = files(path, store)
    for i in range(1, 20):
        accepted(one(store, create(f"c{i}")))
        accepted(one(store, delete(f"a{i}")))
    yield Background(durable, first, files(path, store))
    store.close()


@pytest.mark.parametrize("seed", range(8))
def test_a_checkpoint_synced_in_the_background_loses_no_write_after_a_power_loss(
        background: Background, seed: int, tmp_path: Path) -> None:
    current, log, acknowledged = background.last
    torn_data(background.durable, current, seed, tmp_path / "data", log)
    assert state_after_boot(open_store, tmp_path / "data") == acknowledged


@pytest.mark.parametrize("seed", range(8))
def test_a_header_torn_while_finishing_a_checkpoint_leaves_the_one_before(
        background: Background, seed: int, tmp_path: Path) -> None:
    current, log, acknowledged = background.first
    torn_data(background.durable, current, seed, tmp_path / "data")
    header = bytearray(log)
    newest = max((0, 1), key=lambda slot: header[slot * SLOT + 8:slot * SLOT + 16])
    header[newest * SLOT + 40] ^= 0xFF
    (tmp_path / "data" / "wal").write_bytes(bytes(header))
    assert state_after_boot(open_store, tmp_path / "data") == acknowledged
