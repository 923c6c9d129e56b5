"""The LMDB store's request window with a fake clock: bounded by count, pruned a little
per write, never recording a transient refusal, replays after compaction. (Bounded by age,
exactly once, BATCH and LIST paging on both backends: tests/integration/test_store_backends.py.)"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.errors import StoreFull
from ecsm_actors.protocol import Op
from ecsm_actors.store import Outcome, Store
from ecsm_actors.store.window import PRUNE_STEP
from tests.registry_samples import service
from tests.store_writes import FakeClock, batch, create, one, reopening

KIND = "ECSMService"


OpenStore = Callable[..., Store]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def open_store(tmp_path: Path, clock: FakeClock) -> Iterator[OpenStore]:
    def open_one(**options: Any) -> Store:
        return Store(tmp_path / "data", **{"map_size": 16 << 20, "clock": clock, **options})

    with reopening(open_one) as open_:
        yield open_


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()


# -- transient refusals ------------------------------------------------------------------


def test_a_store_full_refusal_is_not_recorded_so_the_retry_applies(
        open_store: OpenStore) -> None:
    full = open_store(full_ratio=0.0)  # every write that adds is refused
    assert isinstance(one(full, create("web", "full-1")), StoreFull)
    roomy = open_store()
    again = one(roomy, create("web", "full-1"))
    assert isinstance(again, Outcome) and not again.replayed
    assert roomy.resource_version == 1


def test_an_atomic_batch_refused_for_a_full_store_is_not_recorded_so_the_retry_applies(
        open_store: OpenStore) -> None:
    writes = (create("a"), create("b"))
    full = open_store(full_ratio=0.0)
    refused = one(full, batch(*writes, atomic=True, request_id="full-batch"))
    assert isinstance(refused, Outcome)
    assert [r["error"]["code"] for r in refused.result["results"]] == ["StoreFull", "StoreFull"]
    roomy = open_store()
    again = one(roomy, batch(*writes, atomic=True, request_id="full-batch"))
    assert isinstance(again, Outcome) and not again.replayed
    assert roomy.resource_version == 2


def test_writes_without_a_request_id_leave_the_window_empty(store: Store) -> None:
    store.execute([create("a"), create("b")])
    with store._env.begin() as txn:  # noqa: SLF001 - the window's size is the point
        assert store.window.count(txn) == 0


# -- the replayed reply ----------------------------------------------------------------


def test_a_replay_after_compaction_gives_the_current_object_when_it_has_not_changed(
        open_store: OpenStore) -> None:
    store = open_store(event_log_limit=2)
    first = one(store, create("web", "c-1"))
    store.execute([create("a"), create("b"), create("c")])  # compacts the event of web
    again = one(store, create("web", "c-1"))
    assert isinstance(again, Outcome) and again.replayed
    assert again.encoded == first.encoded  # type: ignore[union-attr]


def test_a_replay_after_compaction_of_a_changed_object_gives_its_identity_and_version(
        open_store: OpenStore) -> None:
    store = open_store(event_log_limit=2)
    one(store, create("web", "c-2"))
    for replicas in (3, 4, 5):
        store.write(Op.UPDATE, object=service("web", replicas=replicas))
    again = one(store, create("web", "c-2"))
    assert isinstance(again, Outcome) and again.replayed
    assert again.result == {"apiVersion": "ecsm.sh/v1", "kind": KIND, "metadata": {
        "namespace": "default", "name": "web", "resourceVersion": 1}}


# -- bounds ------------------------------------------------------------------------------


def test_beyond_request_window_records_the_oldest_request_ids_are_forgotten(
        open_store: OpenStore) -> None:
    store = open_store(request_window=3)
    for i in range(5):
        one(store, create(f"o{i}", f"id-{i}"))
    store.write(Op.DELETE, kind=KIND, namespace="default", name="o0")
    store.write(Op.DELETE, kind=KIND, namespace="default", name="o2")
    kept = one(store, create("o2", "id-2"))
    forgotten = one(store, create("o0", "id-0"))
    assert isinstance(forgotten, Outcome) and not forgotten.replayed  # applied anew
    assert isinstance(kept, Outcome) and kept.replayed


def test_pruning_is_incremental_a_few_records_per_write_transaction(
        open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(request_window_age=60)
    store.execute([create(f"o{i}", f"id-{i}") for i in range(3 * PRUNE_STEP)])
    clock.now += 61
    store.write(Op.CREATE, object=service("trigger"))
    with store._env.begin() as txn:  # noqa: SLF001
        assert store.window.count(txn) == 2 * PRUNE_STEP
    for _ in range(2):
        store.write(Op.CREATE, object=service(f"t{int(clock.now)}"))
        clock.now += 1
    with store._env.begin() as txn:  # noqa: SLF001
        assert store.window.count(txn) == 0
