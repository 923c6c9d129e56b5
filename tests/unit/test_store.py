"""The LMDB store's event log: one event per mutation, its seq the resourceVersion. (The
store's semantics — versions, generation, OCC, status/spec, apply, finalizers — are tested
on both backends in tests/integration/test_store_backends.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors.protocol import EventType, Op
from ecsm_actors.store import Store
from tests.registry_samples import hpa, service

NOW = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", map_size=16 << 20, clock=lambda: NOW)
    yield s
    s.close()


def events_of(store: Store, since: int = 0) -> list[tuple[EventType, str, int]]:
    events, _ = store.watch_since(since)
    return [(e.type, e.key, e.seq) for e in events]


def test_every_mutation_is_one_event_whose_seq_is_its_resource_version(store: Store) -> None:
    web = store.write(Op.CREATE, object=service("web"))
    store.write(Op.CREATE, object=hpa("web"))
    store.write(Op.UPDATE_STATUS, object={**web, "status": {"replicas": 1}})
    store.write(Op.APPLY, object=service("web", replicas=9))
    store.write(Op.DELETE, kind="ECSMHpa", namespace="default", name="web")
    events, rv = store.watch_since(0)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5] == [e.resource_version for e in events]
    assert rv == 5
    assert all(e.epoch == store.epoch for e in events)
    assert all(e.object and e.object["metadata"]["resourceVersion"] == e.seq for e in events)
    assert [e.kind for e in events] == ["ECSMService", "ECSMHpa", "ECSMService",
                                        "ECSMService", "ECSMHpa"]


