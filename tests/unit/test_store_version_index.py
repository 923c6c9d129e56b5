"""The store answers a versions-only LIST from its index of versions
(:mod:`ecsm_actors.store.versions`): without reading an object once the kind is indexed,
and always exactly what the committed objects say — after creates, updates, deletes,
batches (atomic ones rolled back), dry runs, replayed requests, a transaction that
failed, a restore, and the store opened again."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.errors import StoreFull
from ecsm_actors.protocol import Op
from ecsm_actors.store import Store, lmdb_store
from ecsm_actors.store.records import Outcome, Write
from ecsm_actors.store.versions import VersionIndex
from tests.registry_samples import hpa, service

NAMESPACES = ("a", "ab", "default")


def open_store(path: Path) -> Store:
    return Store(path, map_size=32 << 20, volatile_dir=path / "volatile")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "data")
    yield s
    s.close()


def truth(store: Store, kind: str, namespace: str | None) -> list[tuple[str, int]]:
    """The pairs as the stored objects, decoded, say them (in the store's key order)."""
    objects, _ = store.list_objects(kind, namespace)
    return [(f"{o['metadata']['namespace']}/{o['metadata']['name']}",
             o["metadata"]["resourceVersion"]) for o in objects]


def assert_index_is_the_objects(store: Store) -> None:
    for kind in ("ECSMService", "ECSMHpa"):
        for namespace in (None, *NAMESPACES, "none-such"):
            versions, rv = store.list_versions(kind, namespace)
            assert versions == truth(store, kind, namespace), (kind, namespace)
            assert rv == store.resource_version


def test_a_versions_only_list_of_an_indexed_kind_reads_no_stored_object(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(30):
        store.write(Op.CREATE, object=service(f"web-{i}", namespace=NAMESPACES[i % 3]))
    peeked: list[object] = []
    real = lmdb_store.peek_resource_version

    def counting(frame: Any) -> int:
        peeked.append(frame)
        return real(frame)

    monkeypatch.setattr(lmdb_store, "peek_resource_version", counting)
    first, _ = store.list_versions("ECSMService")
    assert len(peeked) == 30  # the first LIST of the kind builds its index
    store.write(Op.UPDATE, object=service("web-4", namespace="ab", replicas=5))
    store.write(Op.CREATE, object=service("new", namespace="a"))
    again, rv = store.list_versions("ECSMService")
    by_namespace, _ = store.list_versions("ECSMService", "a")
    assert len(peeked) == 30, "an indexed kind was read object by object again"
    assert again == truth(store, "ECSMService", None)
    assert by_namespace == truth(store, "ECSMService", "a")
    assert rv == store.resource_version == 32


def random_write(rng: random.Random, store: Store, names: list[str]) -> Write:
    name = rng.choice(names)
    namespace = rng.choice(NAMESPACES)
    kind_obj = (service(name, namespace=namespace, replicas=rng.randint(0, 5))
                if rng.random() < 0.8 else hpa(name, max_replicas=rng.randint(2, 9)))
    if kind_obj["kind"] == "ECSMHpa":
        kind_obj["metadata"]["namespace"] = namespace
    op = rng.choice([Op.CREATE, Op.CREATE, Op.UPDATE, Op.APPLY, Op.DELETE, Op.UPDATE_STATUS])
    if op is Op.DELETE:
        return Write(op=op, fields={"kind": kind_obj["kind"], "namespace": namespace,
                                    "name": name})
    if op is Op.UPDATE_STATUS:
        kind_obj["status"] = {"replicas": rng.randint(0, 3)} if kind_obj["kind"] == \
            "ECSMService" else {"currentReplicas": rng.randint(1, 3)}
    if rng.random() < 0.2:  # a stale version: a Conflict
        kind_obj["metadata"]["resourceVersion"] = 1
    return Write(op=op, fields={"object": kind_obj})


def test_the_index_is_the_committed_objects_after_every_kind_of_write(tmp_path: Path) -> None:
    rng = random.Random(14)
    names = [f"s{i}" for i in range(6)]
    store = open_store(tmp_path / "data")
    try:
        assert_index_is_the_objects(store)  # both kinds indexed, empty, from the start
        for step in range(120):
            roll = rng.random()
            if roll < 0.45:
                store.execute([random_write(rng, store, names)
                               for _ in range(rng.randint(1, 4))])
            elif roll < 0.65:
                store.execute([Write(op=Op.BATCH, fields={
                    "atomic": rng.random() < 0.6,
                    "writes": [random_write(rng, store, names)
                               for _ in range(rng.randint(1, 4))]})])
            elif roll < 0.75:
                store.dry_run(random_write(rng, store, names))
            elif roll < 0.85:  # the same request twice: the second is replayed
                write = random_write(rng, store, names)
                fields = {**write.fields, "requestId": f"req-{step}"}
                store.execute([Write(op=write.op, fields=fields)] * 2)
            elif roll < 0.92:
                store.release_pages()
            else:
                store.close()
                store = open_store(tmp_path / "data")
            assert_index_is_the_objects(store)
    finally:
        store.close()


def test_an_atomic_batch_rolled_back_leaves_no_version_in_the_index(store: Store) -> None:
    store.write(Op.CREATE, object=service("a"))
    store.list_versions("ECSMService")  # indexed
    [outcome] = store.execute([Write(op=Op.BATCH, fields={"atomic": True, "writes": [
        Write(op=Op.CREATE, fields={"object": service("b")}),
        Write(op=Op.UPDATE, fields={"object": service("a", replicas=7)}),
        Write(op=Op.CREATE, fields={"object": service("a")})]})])  # exists: all aborted
    assert isinstance(outcome, Outcome)
    assert store.list_versions("ECSMService") == ([("default/a", 1)], 1)


def test_a_transaction_that_failed_to_commit_leaves_the_index_as_it_was(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write(Op.CREATE, object=service("a"))
    assert store.list_versions("ECSMService") == ([("default/a", 1)], 1)

    def disk_full(ops: Any) -> Any:
        raise StoreFull("no room for the log's record")

    monkeypatch.setattr(store._ckpt, "reserve", disk_full)  # noqa: SLF001
    results = store.execute([Write(op=Op.CREATE, fields={"object": service("b")}),
                             Write(op=Op.DELETE, fields={"kind": "ECSMService",
                                                         "namespace": "default",
                                                         "name": "a"})])
    assert all(isinstance(r, StoreFull) for r in results)
    monkeypatch.undo()
    assert store.list_versions("ECSMService") == ([("default/a", 1)], 1)
    assert_index_is_the_objects(store)


def test_a_restore_starts_the_index_over(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    try:
        assert store.list_versions("ECSMService") == ([], 0)
        source = open_store(tmp_path / "source")
        try:
            source.write(Op.CREATE, object=service("x", namespace="a"))
            objects = source.list_objects("ECSMService")[0]
        finally:
            source.close()
        store.restore(objects)
        assert store.list_versions("ECSMService") == ([("a/x", 1)], 1)
    finally:
        store.close()


def test_the_index_lists_in_key_order_and_by_namespace_prefix_exactly() -> None:
    index = VersionIndex()
    assert "K" not in index
    index.build("K", [("b/x", 3), ("a/y", 2)])
    assert index.versions("K") == [("a/y", 2), ("b/x", 3)]
    index.commit([("K", "ab/z", 4), ("K", "a/a", 5), ("K", "b/x", 6), ("Other", "a/q", 7)])
    assert index.versions("K") == [("a/a", 5), ("a/y", 2), ("ab/z", 4), ("b/x", 6)]
    assert index.versions("K", "a") == [("a/a", 5), ("a/y", 2)]  # not ab/z
    index.commit([("K", "a/y", None), ("K", "gone/never", None)])
    assert index.versions("K") == [("a/a", 5), ("ab/z", 4), ("b/x", 6)]
    assert "Other" not in index
    index.clear()
    assert "K" not in index
