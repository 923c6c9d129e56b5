"""Store.restore: objects written into an empty LMDB store exactly as another store held
them (the LMDB side of ``ecsm-operator store migrate``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors.errors import BadRequest
from ecsm_actors.protocol import EventType
from ecsm_actors.store import Store
from tests.migrate_samples import every_object, populate, without_version

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def source(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "source", map_size=16 << 20)
    populate(s)
    yield s
    s.close()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "target", map_size=16 << 20)
    yield s
    s.close()


def test_restore_keeps_every_object_and_its_metadata_and_gives_new_versions_with_events(
        source: Store, target: Store) -> None:
    objects = every_object(source)
    rv = target.restore(objects.values())
    restored = every_object(target)
    assert without_version(restored) == without_version(objects)
    assert rv == target.resource_version == len(objects)
    assert sorted(o["metadata"]["resourceVersion"] for o in restored.values()) == [1, 2, 3]
    events, _ = target.watch_since(0)
    assert [(e.type, e.seq) for e in events] == [(EventType.ADDED, n) for n in (1, 2, 3)]


def test_restore_refuses_a_store_that_holds_objects_and_changes_nothing(
        source: Store, target: Store) -> None:
    objects = list(every_object(source).values())
    target.restore(objects[:1])
    with pytest.raises(BadRequest, match="already holds 1 objects"):
        target.restore(objects)
    assert len(every_object(target)) == 1 and target.resource_version == 1


def test_an_object_given_twice_restores_nothing(source: Store, target: Store) -> None:
    objects = list(every_object(source).values())
    with pytest.raises(BadRequest, match="comes twice"):
        target.restore([*objects, objects[0]])
    assert every_object(target) == {} and target.resource_version == 0
