"""Store semantics (DESIGN §4): versions, generation, OCC, status/spec separation, apply,
finalizers, one event per mutation."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from ecsm_actors.errors import AlreadyExists, Conflict, Invalid, NotFound
from ecsm_actors.protocol import Event, EventType, Op
from ecsm_actors.store import Store, Write
from tests.registry_samples import hpa, service, with_changes

NOW = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", map_size=16 << 20, clock=lambda: NOW)
    yield s
    s.close()


def events_of(store: Store, since: int = 0) -> list[tuple[EventType, str, int]]:
    events, _ = store.watch_since(since)
    return [(e.type, e.key, e.seq) for e in events]


def test_create_sets_uid_timestamp_generation_one_and_the_next_resource_version(
        store: Store) -> None:
    obj = store.write(Op.CREATE, object=service("web"))
    meta = obj["metadata"]
    assert meta["resourceVersion"] == 1 == store.resource_version
    assert meta["generation"] == 1
    assert meta["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert len(meta["uid"]) == 36
    assert meta["namespace"] == "default"
    assert store.get("ECSMService", "default", "web") == obj


def test_create_ignores_server_owned_metadata_and_status_in_the_request(store: Store) -> None:
    request = service("web", uid="forged", generation=9, resourceVersion=77,
                      deletionTimestamp="2020-01-01T00:00:00Z")
    request["status"] = {"replicas": 5}
    obj = store.write(Op.CREATE, object=request)
    assert obj["metadata"]["uid"] != "forged"
    assert obj["metadata"]["generation"] == 1
    assert "deletionTimestamp" not in obj["metadata"]
    assert obj["status"].get("replicas", 0) == 0


def test_creating_an_existing_object_is_already_exists(store: Store) -> None:
    store.write(Op.CREATE, object=service("web"))
    with pytest.raises(AlreadyExists):
        store.write(Op.CREATE, object=service("web"))
    assert store.resource_version == 1


def test_a_stale_resource_version_is_a_conflict(store: Store) -> None:
    first = store.write(Op.CREATE, object=service("web"))
    store.write(Op.UPDATE, object=with_changes(first, spec__priority=1))
    with pytest.raises(Conflict):
        store.write(Op.UPDATE, object=with_changes(first, spec__priority=2))
    with pytest.raises(Conflict):
        store.write(Op.UPDATE_STATUS, object={**first, "status": {"replicas": 1}})
    with pytest.raises(Conflict):
        store.write(Op.DELETE, kind="ECSMService", namespace="default", name="web",
                    resourceVersion=1)
    assert store.get("ECSMService", "default", "web")["spec"]["priority"] == 1


def test_an_absent_resource_version_updates_unconditionally(store: Store) -> None:
    store.write(Op.CREATE, object=service("web"))
    store.write(Op.UPDATE, object=service("web", replicas=3))
    obj = store.write(Op.UPDATE, object=service("web", replicas=4))
    assert obj["spec"]["deploymentStrategy"]["replicas"] == 4
    assert obj["metadata"]["resourceVersion"] == 3


def test_a_string_resource_version_is_accepted_and_garbage_is_invalid(store: Store) -> None:
    first = store.write(Op.CREATE, object=service("web"))
    as_string = with_changes(first, metadata__resourceVersion="1", spec__priority=3)
    assert store.write(Op.UPDATE, object=as_string)["metadata"]["resourceVersion"] == 2
    with pytest.raises(Invalid, match="resourceVersion"):
        store.write(Op.UPDATE, object=with_changes(first, metadata__resourceVersion="x"))


def test_generation_bumps_only_when_the_spec_changes(store: Store) -> None:
    obj = store.write(Op.CREATE, object=service("web"))
    labelled = store.write(Op.UPDATE, object=with_changes(obj, metadata__labels={"a": "b"}))
    assert labelled["metadata"]["generation"] == 1
    scaled = store.write(Op.UPDATE, object=service("web", replicas=5))
    assert scaled["metadata"]["generation"] == 2
    status = store.write(Op.UPDATE_STATUS, object={**scaled, "status": {"replicas": 5}})
    assert status["metadata"]["generation"] == 2


def test_update_ignores_status(store: Store) -> None:
    obj = store.write(Op.CREATE, object=service("web"))
    store.write(Op.UPDATE_STATUS, object={**obj, "status": {"replicas": 2}})
    changed = store.write(Op.UPDATE, object={**service("web", replicas=3),
                                              "status": {"replicas": 99}})
    assert changed["status"]["replicas"] == 2


def test_update_status_touches_only_status(store: Store) -> None:
    obj = store.write(Op.CREATE, object=service("web"))
    request = with_changes(obj, spec__priority=7, metadata__labels={"x": "y"})
    request["status"] = {"readyReplicas": 1}
    after = store.write(Op.UPDATE_STATUS, object=request)
    assert after["status"]["readyReplicas"] == 1
    assert after["spec"] == obj["spec"]
    assert "x" not in (after["metadata"].get("labels") or {})


def test_a_write_that_changes_nothing_writes_nothing(store: Store) -> None:
    obj = store.write(Op.CREATE, object=service("web"))
    assert store.write(Op.UPDATE, object=obj) == obj
    assert store.write(Op.UPDATE_STATUS, object=obj) == obj
    assert store.resource_version == 1
    assert len(events_of(store)) == 1


def test_updating_a_missing_object_is_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.write(Op.UPDATE, object=service("ghost"))
    with pytest.raises(NotFound):
        store.write(Op.UPDATE_STATUS, object=service("ghost"))
    with pytest.raises(NotFound):
        store.write(Op.DELETE, kind="ECSMService", namespace="default", name="ghost")
    with pytest.raises(NotFound):
        store.get("ECSMService", "default", "ghost")


def test_apply_creates_configures_and_reports_unchanged_without_a_new_version(
        store: Store) -> None:
    assert store.write(Op.APPLY, object=service("web"))["action"] == "created"
    assert store.write(Op.APPLY, object=service("web"))["action"] == "unchanged"
    assert store.resource_version == 1
    result = store.write(Op.APPLY, object=service("web", replicas=4))
    assert result["action"] == "configured"
    assert result["object"]["metadata"]["generation"] == 2
    assert [t for t, _, _ in events_of(store)] == [EventType.ADDED, EventType.MODIFIED]


def test_apply_keeps_status_server_metadata_and_finalizers_it_does_not_declare(
        store: Store) -> None:
    created = store.write(Op.CREATE, object=service("web", finalizers=["ecsm.sh/cleanup"]))
    store.write(Op.UPDATE_STATUS, object={**created, "status": {"replicas": 2}})
    applied = store.write(Op.APPLY, object=service("web", replicas=3))["object"]
    assert applied["metadata"]["finalizers"] == ["ecsm.sh/cleanup"]
    assert applied["metadata"]["uid"] == created["metadata"]["uid"]
    assert applied["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert applied["status"]["replicas"] == 2


def test_an_invalid_object_is_refused_with_causes_and_nothing_is_written(store: Store) -> None:
    bad = with_changes(service("web"), spec__deploymentStrategy={"type": "Sideways"})
    with pytest.raises(Invalid) as err:
        store.write(Op.CREATE, object=bad)
    assert any("deploymentStrategy" in c.field for c in err.value.causes)
    assert store.resource_version == 0
    assert store.list_objects("ECSMService") == ([], 0)


def test_delete_without_finalizers_removes_at_once(store: Store) -> None:
    store.write(Op.CREATE, object=service("web"))
    assert store.write(Op.DELETE, kind="ECSMService", namespace="default", name="web") is None
    with pytest.raises(NotFound):
        store.get("ECSMService", "default", "web")
    last = store.watch_since(1)[0][0]
    assert (last.type, last.seq, last.resource_version) == (EventType.DELETED, 2, 2)
    assert last.object is not None and last.object["metadata"]["name"] == "web"


def test_delete_with_finalizers_marks_the_object_until_its_last_finalizer_goes(
        store: Store) -> None:
    store.write(Op.CREATE, object=service("web", finalizers=["a", "b"]))
    marked = store.write(Op.DELETE, kind="ECSMService", namespace="default", name="web")
    assert marked["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:20Z"
    again = store.write(Op.DELETE, kind="ECSMService", namespace="default", name="web")
    assert again == marked
    one_left = store.write(Op.UPDATE, object=with_changes(marked, metadata__finalizers=["b"]))
    assert one_left["metadata"]["finalizers"] == ["b"]
    store.write(Op.UPDATE, object=with_changes(one_left, metadata__finalizers=[]))
    with pytest.raises(NotFound):
        store.get("ECSMService", "default", "web")
    assert [t for t, _, _ in events_of(store)] == [
        EventType.ADDED, EventType.MODIFIED, EventType.MODIFIED, EventType.DELETED]


def test_an_object_being_deleted_cannot_gain_finalizers_but_its_spec_may_change(
        store: Store) -> None:
    store.write(Op.CREATE, object=service("web", finalizers=["a"]))
    marked = store.write(Op.DELETE, kind="ECSMService", namespace="default", name="web")
    with pytest.raises(Invalid, match="being deleted"):
        store.write(Op.UPDATE, object=with_changes(marked, metadata__finalizers=["a", "z"]))
    scaled = store.write(Op.UPDATE, object=with_changes(
        marked, spec__deploymentStrategy__replicas=0))
    assert scaled["metadata"]["generation"] == 2
    assert scaled["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]


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


def test_list_filters_by_kind_and_namespace(store: Store) -> None:
    store.write(Op.CREATE, object=service("a"))
    store.write(Op.CREATE, object=service("b", namespace="prod"))
    store.write(Op.CREATE, object=hpa("a"))
    names = lambda items: sorted(o["metadata"]["name"] for o in items)  # noqa: E731
    assert names(store.list_objects("ECSMService")[0]) == ["a", "b"]
    assert names(store.list_objects("ECSMService", "prod")[0]) == ["b"]
    assert names(store.list_objects("ECSMHpa", "default")[0]) == ["a"]
    assert store.list_objects("ECSMService", "nope") == ([], 3)


def test_a_versions_list_gives_each_key_and_version_of_the_same_snapshot(store: Store) -> None:
    store.write(Op.CREATE, object=service("a"))
    store.write(Op.CREATE, object=service("b", namespace="prod"))
    store.write(Op.CREATE, object=hpa("a"))
    store.write(Op.UPDATE_STATUS, object={**service("a"), "status": {"replicas": 1}})
    assert store.list_versions("ECSMService") == ([("default/a", 4), ("prod/b", 2)], 4)
    assert store.list_versions("ECSMService", "prod") == ([("prod/b", 2)], 4)
    assert store.list_versions("ECSMHpa") == ([("default/a", 3)], 4)
    full, rv = store.list_objects("ECSMService")
    assert [(f"{o['metadata']['namespace']}/{o['metadata']['name']}",
             o["metadata"]["resourceVersion"]) for o in full] == \
        store.list_versions("ECSMService")[0] and rv == 4


def test_a_batch_applies_good_writes_and_refuses_bad_ones_individually(store: Store) -> None:
    results = store.execute([
        Write(op=Op.CREATE, fields={"object": service("a")}),
        Write(op=Op.CREATE, fields={"object": service("a")}),
        Write(op=Op.CREATE, fields={"object": {"kind": "Nope"}}),
        Write(op=Op.UPDATE, fields={"object": service("a", replicas=7)}),
    ])
    assert isinstance(results[1], AlreadyExists)
    assert isinstance(results[2], Invalid)
    for ok in (results[0], results[3]):
        assert msgpack.unpackb(ok.encoded) == ok.result  # type: ignore[union-attr]
        event = ok.events[0]  # type: ignore[union-attr]
        assert Event.from_wire(msgpack.unpackb(event.body)) == event.event
    assert results[3].result["spec"]["deploymentStrategy"]["replicas"] == 7  # type: ignore[union-attr]
    assert [seq for _, _, seq in events_of(store)] == [1, 2]


def test_a_write_does_not_alias_the_callers_object(store: Store) -> None:
    request = service("web")
    kept = copy.deepcopy(request)
    store.write(Op.CREATE, object=request)
    assert request == kept
