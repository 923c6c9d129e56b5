"""A LIST's reply is made in the store's one copy out of its map (``list_raw(head=...)``):
byte for byte the reply made around the objects joined apart, as clients decode it."""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.protocol import Op
from ecsm_actors.store import Store
from tests.registry_samples import hpa, service


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", map_size=32 << 20)
    yield s
    s.close()


def reply_in_one_copy(store: Store, kind: str, namespace: str | None) -> bytes:
    def head(count: int, rv: int) -> bytes:
        return protocol.raw_list_reply_head(7, store.epoch, {"resourceVersion": rv},
                                            "items", count)
    return store.list_raw(kind, namespace, head=head).data


def reply_joined_apart(store: Store, kind: str, namespace: str | None) -> bytes:
    raw = store.list_raw(kind, namespace)
    return protocol.encode_reply_with_raw_list(
        7, store.epoch, {"resourceVersion": raw.resource_version}, "items", raw.count,
        raw.data)


@pytest.mark.parametrize("namespace", [None, "one", "two", "none-such"])
def test_the_reply_made_in_the_stores_copy_is_the_reply_made_around_the_joined_objects(
        store: Store, namespace: str | None) -> None:
    for i in range(20):  # 16 and more: an array16 header; a kind after them not listed
        store.write(Op.CREATE, object=service(f"web-{i}", namespace="one"))
    store.write(Op.CREATE, object=service("db", namespace="two"))
    store.write(Op.CREATE, object=hpa("web"))
    made = reply_in_one_copy(store, "ECSMService", namespace)
    assert made == reply_joined_apart(store, "ECSMService", namespace)
    items = protocol.decode_reply(made).result["items"]
    expected = {None: 21, "one": 20, "two": 1, "none-such": 0}[namespace]
    assert len(items) == expected
    assert all(o["kind"] == "ECSMService" for o in items)


def test_every_kind_and_namespace_lists_exactly_its_objects_in_key_order(
        store: Store) -> None:
    # namespaces around "one" in key order: "one-more" before it, "one0" and "two" after
    for namespace in ("one", "one-more", "one0", "two"):
        for name in ("a", "b"):
            store.write(Op.CREATE, object=service(f"{name}-{namespace}", namespace=namespace))
    store.write(Op.CREATE, object=hpa("web"))
    objects = [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])
               for kind in ("ECSMHpa", "ECSMService")
               for o in store.list_raw(kind).decode()]
    assert objects == sorted(objects, key="/".join) and len(objects) == 9  # store keys
    for kind, namespace in [("ECSMHpa", None), ("ECSMHpa", "default"), ("ECSMService", None),
                            ("ECSMService", "one"), ("ECSMService", "one-more"),
                            ("ECSMService", "one0"), ("ECSMService", "two"),
                            ("ECSMService", "on"), ("ECSMService", "default")]:
        listed = [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"])
                  for o in store.list_raw(kind, namespace).decode()]
        assert listed == [o for o in objects
                          if o[0] == kind and namespace in (None, o[1])], (kind, namespace)



def array_head(count: int, rv: int) -> bytes:
    """A head made without msgpack (whose packers take 256 KiB buffers each)."""
    return b"\xdd" + count.to_bytes(4, "big")


@pytest.mark.parametrize("namespace", [None, "one"])
def test_a_list_holds_no_python_object_per_listed_object_while_it_reads(
        store: Store, namespace: str | None) -> None:
    # A buffer object kept per object (about 200 bytes each) would stay in the
    # interpreter's arenas, resident, after every LIST: only the reply's bytes may count.
    for i in range(300):
        store.write(Op.CREATE, object=service(f"web-{i:03}", namespace="one"))
    store.write(Op.CREATE, object=service("db", namespace="two"))
    store.list_raw("ECSMService", namespace, head=array_head)  # caches warm
    tracemalloc.start()
    try:
        data = store.list_raw("ECSMService", namespace, head=array_head).data
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(msgpack.unpackb(data)) == 301 - (namespace == "one")
    assert peak - sys.getsizeof(data) < 8 << 10
