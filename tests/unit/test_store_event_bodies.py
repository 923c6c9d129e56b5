"""The store encodes its events' bodies itself (its constant runs packed once): every body
it publishes, keeps and serves is byte for byte what ``protocol.encode_event_body`` makes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from ecsm_actors.protocol import EventType, Op, encode_event_body
from ecsm_actors.store import Outcome, Store, Write
from ecsm_actors.store.lmdb_store import _EventBodies
from tests.registry_samples import service

NOW = 1_700_000_000.0

#: Versions at each edge of msgpack's integer widths (fixint, uint8, 16, 32, 64).
EDGES = (1, 2, 127, 128, 129, 255, 256, 257, 65_535, 65_536, 65_537, 2**32 - 1, 2**32,
         2**32 + 1, 2**63)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", map_size=32 << 20, clock=lambda: NOW)
    yield s
    s.close()


@pytest.mark.parametrize("seq", EDGES)
def test_an_event_body_is_the_protocols_at_every_width_of_its_versions(seq: int) -> None:
    bodies = _EventBodies("0123456789abcdef")
    frame = msgpack.packb({"kind": "ECSMService", "metadata": {"name": "a"}})
    for type_ in EventType:
        for kind, key in (("ECSMService", "default/a"), ("Node", "n/" + "k" * 40),
                          ("ECSMService", "ns/" + "x" * 300)):
            assert bodies.body(type_, kind, key, seq, frame) == encode_event_body(
                "0123456789abcdef", type_, kind, key, seq, frame), (type_, kind, seq)


def test_every_event_published_and_served_is_the_protocols_encoding_of_its_object(
        store: Store) -> None:
    obj = service("a")
    obj["metadata"]["finalizers"] = ["keep"]
    writes = [Write(op=Op.CREATE, fields={"object": obj})]
    results = store.execute(writes)
    for replicas in (3, 4):  # the object's stub made whole again and again
        current = store.get("ECSMService", "default", "a")
        current["spec"]["deploymentStrategy"]["replicas"] = replicas
        results += store.execute([Write(op=Op.UPDATE, fields={"object": current})])
    results += store.execute([Write(op=Op.DELETE, fields={
        "kind": "ECSMService", "namespace": "default", "name": "a"})])
    current = store.get("ECSMService", "default", "a")
    current["metadata"]["finalizers"] = []
    results += store.execute([Write(op=Op.UPDATE, fields={"object": current})])
    published = [ev.body for r in results if isinstance(r, Outcome) for ev in r.events]
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(store.watch_since_raw(0).data)
    served = list(unpacker)
    assert [e["type"] for e in served] == ["ADDED", "MODIFIED", "MODIFIED", "MODIFIED",
                                           "DELETED"]
    for body, event in zip(published, served, strict=True):
        expected = encode_event_body(store.epoch, event["type"], "ECSMService", "default/a",
                                     event["seq"], msgpack.packb(event["object"]))
        assert body == expected
        assert msgpack.packb(event) == expected
