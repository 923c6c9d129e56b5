"""The store's semantics, proven on both backends: every test runs against the LMDB store
and against the etcd store (a real etcd 3.5 member, one per module, a fresh prefix per
test). Versions, generation, OCC, status/spec separation, apply, finalizers, dry run,
exactly once, BATCH, LIST paging and each mutation's event (etcd: from its history). What
only one backend has is tested beside it: LMDB's map and window bounds in tests/unit;
etcd's registries sharing a prefix, epoch, NOSPACE and compaction below."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from ecsm_actors.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    Invalid,
    NotFound,
    StoreFull,
)
from ecsm_actors.protocol import Event, EventType, Op
from ecsm_actors.store import Outcome, RawList, Store, Write
from ecsm_actors.store.etcd_event_records import EtcdEventRecords
from ecsm_actors.store.etcd_store import EtcdStore
from tests.etcd_cluster import EtcdCluster
from tests.registry_samples import hpa, service, with_changes
from tests.store_writes import FakeClock, batch, create, occurrence, one, reopening

pytestmark = pytest.mark.timeout(60)

KIND = "ECSMService"

AnyStore = Store | EtcdStore
OpenStore = Callable[..., AnyStore]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["lmdb", "etcd"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(backend: str, tmp_path: Path, clock: FakeClock,
               request: pytest.FixtureRequest) -> Iterator[OpenStore]:
    """Opens the store of this test (again: closing the one opened before), on the same
    data: an LMDB directory, or an etcd prefix."""
    server: EtcdCluster | None = None
    prefix = ""
    if backend == "etcd":
        server = request.getfixturevalue("etcd_server")
        prefix = request.getfixturevalue("etcd_prefix")

    def open_one(**options: Any) -> AnyStore:
        if server is not None:
            return EtcdStore(server.client(), prefix=prefix, clock=clock, **options)
        return Store(tmp_path / "data", map_size=16 << 20, clock=clock, **options)

    with reopening(open_one) as open_:
        yield open_


@pytest.fixture
def store(open_store: OpenStore) -> AnyStore:
    return open_store()


def lmdb(store: AnyStore) -> bool:
    return isinstance(store, Store)


def update(obj: dict[str, Any], request_id: str) -> Write:
    return Write(op=Op.UPDATE, fields={"object": obj, "requestId": request_id})


def delete(name: str, request_id: str | None = None) -> Write:
    fields: dict[str, Any] = {"kind": KIND, "namespace": "default", "name": name,
                              "resourceVersion": None}
    if request_id is not None:
        fields["requestId"] = request_id
    return Write(op=Op.DELETE, fields=fields)


def event_types(store: AnyStore, since: int) -> list[EventType]:
    """The types of the store's events after ``since`` (etcd: from its history)."""
    events, _ = store.watch_since(since)
    return [e.type for e in events]


# -- versions, generation, OCC -------------------------------------------------------------


def test_create_sets_uid_timestamp_generation_one_and_the_next_resource_version(
        store: AnyStore) -> None:
    base = store.resource_version
    obj = store.write(Op.CREATE, object=service("web"))
    meta = obj["metadata"]
    assert meta["resourceVersion"] == base + 1 == store.resource_version
    assert meta["generation"] == 1
    assert meta["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert len(meta["uid"]) == 36
    assert meta["namespace"] == "default"
    assert store.get(KIND, "default", "web") == obj


def test_create_ignores_server_owned_metadata_and_status_in_the_request(
        store: AnyStore) -> None:
    request = service("web", uid="forged", generation=9, resourceVersion=77,
                      deletionTimestamp="2020-01-01T00:00:00Z")
    request["status"] = {"replicas": 5}
    obj = store.write(Op.CREATE, object=request)
    assert obj["metadata"]["uid"] != "forged"
    assert obj["metadata"]["generation"] == 1
    assert "deletionTimestamp" not in obj["metadata"]
    assert obj["status"].get("replicas", 0) == 0


def test_creating_an_existing_object_is_already_exists(store: AnyStore) -> None:
    store.write(Op.CREATE, object=service("web"))
    rv = store.resource_version
    with pytest.raises(AlreadyExists):
        store.write(Op.CREATE, object=service("web"))
    assert store.resource_version == rv


def test_a_stale_resource_version_is_a_conflict(store: AnyStore) -> None:
    first = store.write(Op.CREATE, object=service("web"))
    store.write(Op.UPDATE, object=with_changes(first, spec__priority=1))
    with pytest.raises(Conflict):
        store.write(Op.UPDATE, object=with_changes(first, spec__priority=2))
    with pytest.raises(Conflict):
        store.write(Op.UPDATE_STATUS, object={**first, "status": {"replicas": 1}})
    with pytest.raises(Conflict):
        store.write(Op.DELETE, kind=KIND, namespace="default", name="web",
                    resourceVersion=first["metadata"]["resourceVersion"])
    assert store.get(KIND, "default", "web")["spec"]["priority"] == 1


@pytest.mark.parametrize("op", [Op.UPDATE, Op.UPDATE_STATUS, Op.APPLY, Op.DELETE])
def test_a_write_claiming_a_newer_resource_version_than_stored_is_a_conflict(
        store: AnyStore, op: Op) -> None:
    """Optimistic concurrency compares for equality: a version from the future (a client
    that read another store, or made one up) is no licence to overwrite."""
    stored = store.write(Op.CREATE, object=service("web"))
    future = stored["metadata"]["resourceVersion"] + 4
    newer = with_changes(stored, metadata__resourceVersion=future, spec__priority=3)
    if op is Op.DELETE:
        fields = {"kind": KIND, "namespace": "default", "name": "web",
                  "resourceVersion": future}
    else:
        fields = {"object": {**newer, "status": {"replicas": 1}}}
    rv = store.resource_version
    with pytest.raises(Conflict):
        store.write(op, **fields)
    assert store.get(KIND, "default", "web") == stored
    assert store.resource_version == rv


def test_an_absent_resource_version_updates_unconditionally(store: AnyStore) -> None:
    base = store.resource_version
    store.write(Op.CREATE, object=service("web"))
    store.write(Op.UPDATE, object=service("web", replicas=3))
    obj = store.write(Op.UPDATE, object=service("web", replicas=4))
    assert obj["spec"]["deploymentStrategy"]["replicas"] == 4
    assert obj["metadata"]["resourceVersion"] == base + 3


def test_a_string_resource_version_is_accepted_and_garbage_is_invalid(
        store: AnyStore) -> None:
    first = store.write(Op.CREATE, object=service("web"))
    rv = first["metadata"]["resourceVersion"]
    as_string = with_changes(first, metadata__resourceVersion=str(rv), spec__priority=3)
    assert store.write(Op.UPDATE, object=as_string)["metadata"]["resourceVersion"] == rv + 1
    with pytest.raises(Invalid, match="resourceVersion"):
        store.write(Op.UPDATE, object=with_changes(first, metadata__resourceVersion="x"))


def test_generation_bumps_only_when_the_spec_changes(store: AnyStore) -> None:
    obj = store.write(Op.CREATE, object=service("web"))
    labelled = store.write(Op.UPDATE, object=with_changes(obj, metadata__labels={"a": "b"}))
    assert labelled["metadata"]["generation"] == 1
    scaled = store.write(Op.UPDATE, object=service("web", replicas=5))
    assert scaled["metadata"]["generation"] == 2
    status = store.write(Op.UPDATE_STATUS, object={**scaled, "status": {"replicas": 5}})
    assert status["metadata"]["generation"] == 2


def test_update_ignores_status(store: AnyStore) -> None:
    obj = store.write(Op.CREATE, object=service("web"))
    store.write(Op.UPDATE_STATUS, object={**obj, "status": {"replicas": 2}})
    changed = store.write(Op.UPDATE, object={**service("web", replicas=3),
                                              "status": {"replicas": 99}})
    assert changed["status"]["replicas"] == 2


def test_update_status_touches_only_status(store: AnyStore) -> None:
    obj = store.write(Op.CREATE, object=service("web"))
    request = with_changes(obj, spec__priority=7, metadata__labels={"x": "y"})
    request["status"] = {"readyReplicas": 1}
    after = store.write(Op.UPDATE_STATUS, object=request)
    assert after["status"]["readyReplicas"] == 1
    assert after["spec"] == obj["spec"]
    assert "x" not in (after["metadata"].get("labels") or {})


def test_a_write_that_changes_nothing_writes_nothing(store: AnyStore) -> None:
    base = store.resource_version
    obj = store.write(Op.CREATE, object=service("web"))
    assert store.write(Op.UPDATE, object=obj) == obj
    assert store.write(Op.UPDATE_STATUS, object=obj) == obj
    assert store.resource_version == base + 1
    assert len(event_types(store, base)) == 1


def test_updating_a_missing_object_is_not_found(store: AnyStore) -> None:
    with pytest.raises(NotFound):
        store.write(Op.UPDATE, object=service("ghost"))
    with pytest.raises(NotFound):
        store.write(Op.UPDATE_STATUS, object=service("ghost"))
    with pytest.raises(NotFound):
        store.write(Op.DELETE, kind=KIND, namespace="default", name="ghost")
    with pytest.raises(NotFound):
        store.get(KIND, "default", "ghost")


def test_an_invalid_object_is_refused_with_causes_and_nothing_is_written(
        store: AnyStore) -> None:
    base = store.resource_version
    bad = with_changes(service("web"), spec__deploymentStrategy={"type": "Sideways"})
    with pytest.raises(Invalid) as err:
        store.write(Op.CREATE, object=bad)
    assert any("deploymentStrategy" in c.field for c in err.value.causes)
    assert store.resource_version == base
    assert store.list_objects(KIND) == ([], base)


def test_a_write_does_not_alias_the_callers_object(store: AnyStore) -> None:
    request = service("web")
    kept = copy.deepcopy(request)
    store.write(Op.CREATE, object=request)
    assert request == kept


# -- apply, finalizers -------------------------------------------------------------------


def test_apply_creates_configures_and_reports_unchanged_without_a_new_version(
        store: AnyStore) -> None:
    base = store.resource_version
    assert store.write(Op.APPLY, object=service("web"))["action"] == "created"
    assert store.write(Op.APPLY, object=service("web"))["action"] == "unchanged"
    assert store.resource_version == base + 1
    result = store.write(Op.APPLY, object=service("web", replicas=4))
    assert result["action"] == "configured"
    assert result["object"]["metadata"]["generation"] == 2
    assert event_types(store, base) == [EventType.ADDED, EventType.MODIFIED]


def test_apply_keeps_status_server_metadata_and_finalizers_it_does_not_declare(
        store: AnyStore) -> None:
    created = store.write(Op.CREATE, object=service("web", finalizers=["ecsm.sh/cleanup"]))
    store.write(Op.UPDATE_STATUS, object={**created, "status": {"replicas": 2}})
    applied = store.write(Op.APPLY, object=service("web", replicas=3))["object"]
    assert applied["metadata"]["finalizers"] == ["ecsm.sh/cleanup"]
    assert applied["metadata"]["uid"] == created["metadata"]["uid"]
    assert applied["metadata"]["creationTimestamp"] == created["metadata"]["creationTimestamp"]
    assert applied["status"]["replicas"] == 2


def test_delete_without_finalizers_removes_at_once(store: AnyStore) -> None:
    base = store.resource_version
    store.write(Op.CREATE, object=service("web"))
    assert store.write(Op.DELETE, kind=KIND, namespace="default", name="web") is None
    with pytest.raises(NotFound):
        store.get(KIND, "default", "web")
    assert store.resource_version == base + 2
    last = store.watch_since(base + 1)[0][0]
    assert (last.type, last.seq, last.resource_version) == (EventType.DELETED, base + 2, base + 2)
    assert last.object is not None and last.object["metadata"]["name"] == "web"


def test_delete_with_finalizers_marks_the_object_until_its_last_finalizer_goes(
        store: AnyStore) -> None:
    base = store.resource_version
    store.write(Op.CREATE, object=service("web", finalizers=["a", "b"]))
    marked = store.write(Op.DELETE, kind=KIND, namespace="default", name="web")
    assert marked["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:20Z"
    again = store.write(Op.DELETE, kind=KIND, namespace="default", name="web")
    assert again == marked
    one_left = store.write(Op.UPDATE, object=with_changes(marked, metadata__finalizers=["b"]))
    assert one_left["metadata"]["finalizers"] == ["b"]
    store.write(Op.UPDATE, object=with_changes(one_left, metadata__finalizers=[]))
    with pytest.raises(NotFound):
        store.get(KIND, "default", "web")
    assert store.resource_version == base + 4
    assert event_types(store, base) == [
        EventType.ADDED, EventType.MODIFIED, EventType.MODIFIED, EventType.DELETED]


def test_an_object_being_deleted_cannot_gain_finalizers_but_its_spec_may_change(
        store: AnyStore) -> None:
    store.write(Op.CREATE, object=service("web", finalizers=["a"]))
    marked = store.write(Op.DELETE, kind=KIND, namespace="default", name="web")
    with pytest.raises(Invalid, match="being deleted"):
        store.write(Op.UPDATE, object=with_changes(marked, metadata__finalizers=["a", "z"]))
    scaled = store.write(Op.UPDATE, object=with_changes(
        marked, spec__deploymentStrategy__replicas=0))
    assert scaled["metadata"]["generation"] == 2
    assert scaled["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]


def test_every_mutation_is_one_event_whose_seq_is_its_resource_version(
        store: AnyStore) -> None:
    base = store.resource_version
    web = store.write(Op.CREATE, object=service("web"))
    store.write(Op.CREATE, object=hpa("web"))
    store.write(Op.UPDATE_STATUS, object={**web, "status": {"replicas": 1}})
    store.write(Op.APPLY, object=service("web", replicas=9))
    store.write(Op.DELETE, kind="ECSMHpa", namespace="default", name="web")
    events, rv = store.watch_since(base)
    assert [e.seq for e in events] == [base + i for i in range(1, 6)] == [
        e.resource_version for e in events]
    if lmdb(store):
        assert rv == base + 5
    else:  # complete up to the progress mark put after the last write
        assert rv == base + 6
    assert all(e.epoch == store.epoch for e in events)
    assert all(e.object and e.object["metadata"]["resourceVersion"] == e.seq for e in events)
    assert [e.kind for e in events] == ["ECSMService", "ECSMHpa", "ECSMService",
                                        "ECSMService", "ECSMHpa"]


# -- reads ---------------------------------------------------------------------------------


def test_list_filters_by_kind_and_namespace(store: AnyStore) -> None:
    store.write(Op.CREATE, object=service("a"))
    store.write(Op.CREATE, object=service("b", namespace="prod"))
    store.write(Op.CREATE, object=hpa("a"))
    names = lambda items: sorted(o["metadata"]["name"] for o in items)  # noqa: E731
    assert names(store.list_objects(KIND)[0]) == ["a", "b"]
    assert names(store.list_objects(KIND, "prod")[0]) == ["b"]
    assert names(store.list_objects("ECSMHpa", "default")[0]) == ["a"]
    assert store.list_objects(KIND, "nope") == ([], store.resource_version)


def test_a_versions_list_gives_each_key_and_version_of_the_same_snapshot(
        store: AnyStore) -> None:
    a = store.write(Op.CREATE, object=service("a"))
    b = store.write(Op.CREATE, object=service("b", namespace="prod"))
    h = store.write(Op.CREATE, object=hpa("a"))
    a = store.write(Op.UPDATE_STATUS, object={**service("a"), "status": {"replicas": 1}})
    rv = store.resource_version
    version = lambda o: o["metadata"]["resourceVersion"]  # noqa: E731
    assert version(a) == rv
    assert store.list_versions(KIND) == ([("default/a", rv), ("prod/b", version(b))], rv)
    assert store.list_versions(KIND, "prod") == ([("prod/b", version(b))], rv)
    assert store.list_versions("ECSMHpa") == ([("default/a", version(h))], rv)
    full, full_rv = store.list_objects(KIND)
    assert [(f"{o['metadata']['namespace']}/{o['metadata']['name']}",
             o["metadata"]["resourceVersion"]) for o in full] == \
        store.list_versions(KIND)[0] and full_rv == rv


def test_pages_cover_every_object_once_even_with_creates_and_deletes_between_pages(
        store: AnyStore) -> None:
    names = [f"svc-{i:03d}" for i in range(0, 100, 2)]
    store.execute([create(n) for n in names])
    seen: list[str] = []
    deleted: set[str] = set()
    token: str | None = None
    turn = 0
    while True:
        page = store.list_page(KIND, None, limit=7, continue_token=token)
        listed = RawList(count=page.count, data=page.data, resource_version=0).decode()
        seen += [o["metadata"]["name"] for o in listed]
        turn += 1
        # Between pages: objects before and after the cursor come and go.
        gone = {f"svc-{(turn * 14) % 100:03d}", f"svc-{(turn * 22 + 6) % 100:03d}"}
        store.execute([create(f"svc-{turn * 7 + 1:03d}"), create(f"svc-{101 + turn:03d}"),
                       *(delete(n) for n in gone)])
        deleted |= gone
        token = page.continue_token
        if not token:
            break
    assert turn > 5
    for name in set(names) - deleted:
        assert seen.count(name) == 1, name
    assert len(seen) == len(set(seen))


def test_a_page_tells_how_many_objects_remain_and_the_last_page_has_no_token(
        store: AnyStore) -> None:
    results = [store.write(Op.CREATE, object=service(f"o{i}")) for i in range(5)]
    first = store.list_page(KIND, None, limit=2)
    assert (first.count, first.remaining) == (2, 3) and first.continue_token
    last = store.list_page(KIND, None, limit=3, continue_token=first.continue_token)
    assert (last.count, last.remaining, last.continue_token) == (3, 0, "")
    versions = store.list_page(KIND, None, limit=10, versions=True)
    assert versions.versions == [(f"default/o{i}", results[i]["metadata"]["resourceVersion"])
                                 for i in range(5)]


def test_a_continue_token_of_another_list_or_forged_is_a_bad_request(store: AnyStore) -> None:
    store.execute([create("a", namespace="x"), create("b", namespace="x"), create("c")])
    token = store.list_page(KIND, "x", limit=1).continue_token
    with pytest.raises(BadRequest, match="another list"):
        store.list_page("ECSMHpa", None, limit=1, continue_token=token)
    with pytest.raises(BadRequest, match="not one this registry gave"):
        store.list_page(KIND, None, limit=1, continue_token="garbage")


# -- dry run -------------------------------------------------------------------------------


def test_a_dry_run_answers_as_the_write_would_and_stores_nothing(store: AnyStore) -> None:
    store.write(Op.CREATE, object=service("db"))
    rv = store.resource_version
    created = store.dry_run(Write(op=Op.APPLY, fields={"object": service("web"),
                                                       "requestId": "r-1"}))
    configured = store.dry_run(Write(op=Op.APPLY, fields={"object": service("db",
                                                                             replicas=5)}))
    assert isinstance(created, Outcome) and created.result["action"] == "created"
    assert isinstance(configured, Outcome) and configured.result["action"] == "configured"
    assert created.events == () and configured.events == ()
    assert store.resource_version == rv
    assert store.watch_since(rv)[0] == []
    with pytest.raises(NotFound):
        store.get(KIND, "default", "web")
    assert store.get(KIND, "default", "db")["spec"]["deploymentStrategy"]["replicas"] == 2
    # r-1 was not recorded: the real write with that id applies.
    real = one(store, Write(op=Op.APPLY, fields={"object": service("web"),
                                                 "requestId": "r-1"}))
    assert isinstance(real, Outcome) and not real.replayed and real.result["action"] == "created"


def test_a_dry_run_of_an_invalid_object_is_refused(store: AnyStore) -> None:
    refused = store.dry_run(Write(op=Op.CREATE, fields={"object": service("x", replicas=-1)}))
    assert isinstance(refused, Invalid)


# -- exactly once --------------------------------------------------------------------------


def test_a_retried_create_is_answered_with_its_first_outcome_and_applied_once(
        store: AnyStore) -> None:
    base = store.resource_version
    first = one(store, create("web", "req-1"))
    again = one(store, create("web", "req-1"))
    assert isinstance(first, Outcome) and not first.replayed
    assert isinstance(again, Outcome) and again.replayed
    assert again.encoded == first.encoded
    assert store.resource_version == base + 1
    assert len(event_types(store, base)) == 1


def test_a_retried_unconditional_update_is_not_applied_twice(store: AnyStore) -> None:
    obj = store.write(Op.CREATE, object=service("web"))
    changed = with_changes(obj, spec__deploymentStrategy__replicas=5)
    del changed["metadata"]["resourceVersion"]
    first = one(store, update(changed, "upd-1"))
    again = one(store, update(changed, "upd-1"))
    assert isinstance(first, Outcome) and isinstance(again, Outcome) and again.replayed
    assert again.result["metadata"]["generation"] == 2 == first.result["metadata"]["generation"]
    assert store.resource_version == obj["metadata"]["resourceVersion"] + 1


def test_a_recorded_refusal_is_replayed_as_the_same_typed_error_marked_replayed(
        store: AnyStore) -> None:
    store.write(Op.CREATE, object=service("web"))
    stale = with_changes(service("web"), metadata__resourceVersion=99_999)
    first = one(store, update(stale, "conflict-1"))
    store.write(Op.UPDATE, object=with_changes(service("web"), spec__template__image="b@2"))
    again = one(store, update(stale, "conflict-1"))
    assert isinstance(first, Conflict) and not first.replayed
    assert isinstance(again, Conflict) and again.replayed
    assert again.message == first.message


def test_a_delete_retried_after_it_landed_replays_success_instead_of_not_found(
        store: AnyStore) -> None:
    store.write(Op.CREATE, object=service("web"))
    assert isinstance(one(store, delete("web", "del-1")), Outcome)
    again = one(store, delete("web", "del-1"))
    assert isinstance(again, Outcome) and again.replayed and again.result is None
    assert isinstance(one(store, delete("web", "del-2")), NotFound)


def test_two_copies_of_one_request_in_the_same_group_commit_apply_once(
        store: AnyStore) -> None:
    base = store.resource_version
    first, second = store.execute([create("web", "dup"), create("web", "dup")])
    assert isinstance(first, Outcome) and not first.replayed
    assert isinstance(second, Outcome) and second.replayed and second.events == ()
    assert second.encoded == first.encoded
    assert store.resource_version == base + 1
    if lmdb(store):
        assert len(first.events) == 1


def test_the_window_survives_closing_and_reopening_the_store(open_store: OpenStore) -> None:
    first = one(open_store(), create("web", "persist-1"))
    reopened = open_store()
    again = one(reopened, create("web", "persist-1"))
    assert isinstance(first, Outcome) and isinstance(again, Outcome)
    assert again.replayed and again.encoded == first.encoded


def test_a_request_id_reused_for_another_object_is_a_bad_request(store: AnyStore) -> None:
    one(store, create("web", "same-id"))
    rv = store.resource_version
    reused = one(store, create("db", "same-id"))
    assert isinstance(reused, BadRequest) and "already used" in reused.message
    assert store.resource_version == rv


def test_a_record_older_than_request_window_age_is_never_replayed(
        open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(request_window_age=3600)
    one(store, create("web", "old"))
    store.write(Op.DELETE, kind=KIND, namespace="default", name="web")
    clock.now += 3601
    again = one(store, create("web", "old"))
    assert isinstance(again, Outcome) and not again.replayed
    if isinstance(store, Store):
        with store._env.begin() as txn:  # noqa: SLF001
            assert store.window.count(txn) == 1  # the old record pruned, the new one kept


# -- BATCH -------------------------------------------------------------------------------


def test_a_batch_applies_good_writes_and_refuses_bad_ones_individually(
        store: AnyStore) -> None:
    base = store.resource_version
    results = store.execute([
        Write(op=Op.CREATE, fields={"object": service("a")}),
        Write(op=Op.CREATE, fields={"object": service("a")}),
        Write(op=Op.CREATE, fields={"object": {"kind": "Nope"}}),
        Write(op=Op.UPDATE, fields={"object": service("a", replicas=7)}),
    ])
    assert isinstance(results[1], AlreadyExists)
    assert isinstance(results[2], Invalid)
    for ok in (results[0], results[3]):
        assert isinstance(ok, Outcome)
        assert msgpack.unpackb(ok.encoded) == ok.result
        if lmdb(store):
            event = ok.events[0]
            assert Event.from_wire(msgpack.unpackb(event.body)) == event.event
    assert results[3].result["spec"]["deploymentStrategy"]["replicas"] == 7  # type: ignore[union-attr]
    assert store.resource_version == base + 2
    assert [e.seq for e in store.watch_since(base)[0]] == [base + 1, base + 2]


def test_a_non_atomic_batch_applies_each_write_on_its_own(store: AnyStore) -> None:
    store.write(Op.CREATE, object=service("taken"))
    result = one(store, batch(create("a"), create("taken"), delete("missing"), create("b")))
    assert isinstance(result, Outcome)
    oks = [r["ok"] for r in result.result["results"]]
    assert oks == [True, False, False, True]
    codes = [r["error"]["code"] for r in result.result["results"] if not r["ok"]]
    assert codes == ["AlreadyExists", "NotFound"]
    assert result.result["resourceVersion"] == store.resource_version
    assert sorted(o["metadata"]["name"] for o in store.list_objects(KIND)[0]) == [
        "a", "b", "taken"]
    if lmdb(store):
        assert len(result.events) == 2


def test_an_atomic_batch_with_one_failing_write_applies_none_and_aborts_the_others(
        store: AnyStore) -> None:
    store.write(Op.CREATE, object=service("taken"))
    rv = store.resource_version
    result = one(store, batch(create("a"), create("taken"), create("b"), atomic=True))
    assert isinstance(result, Outcome) and result.events == ()
    codes = [r["error"]["code"] for r in result.result["results"]]
    assert codes == ["Aborted", "AlreadyExists", "Aborted"]
    assert "writes[1] (AlreadyExists)" in result.result["results"][0]["error"]["message"]
    assert store.resource_version == rv
    assert [o["metadata"]["name"] for o in store.list_objects(KIND)[0]] == ["taken"]


def test_an_atomic_batch_that_succeeds_applies_all_in_one_transaction(
        store: AnyStore) -> None:
    base = store.resource_version
    result = one(store, batch(create("a"), create("b"), delete("a"), atomic=True))
    assert isinstance(result, Outcome)
    assert [r["ok"] for r in result.result["results"]] == [True, True, True]
    assert [o["metadata"]["name"] for o in store.list_objects(KIND)[0]] == ["b"]
    if lmdb(store):
        assert [e.event.seq for e in result.events] == [base + 1, base + 2, base + 3]
    else:  # one etcd txn: one revision for all
        assert store.resource_version == base + 1 == result.result["resourceVersion"]


def test_a_retried_batch_returns_the_same_per_write_outcomes_replayed(
        store: AnyStore) -> None:
    store.write(Op.CREATE, object=service("taken"))
    writes = (create("a"), create("taken"), create("b"))
    first = one(store, batch(*writes, request_id="batch-1"))
    rv = store.resource_version
    again = one(store, batch(*writes, request_id="batch-1"))
    assert isinstance(again, Outcome) and again.replayed and again.events == ()
    assert again.encoded == first.encoded  # type: ignore[union-attr]
    assert store.resource_version == rv


# -- etcd only: several registries on one prefix, epoch, NOSPACE, compaction, txn size -----


@pytest.fixture
def etcd_stores(etcd_server: EtcdCluster, etcd_prefix: str,
                clock: FakeClock) -> Iterator[Callable[..., EtcdStore]]:
    """Opens etcd stores on this test's prefix: as many registries as the test wants."""
    opened: list[EtcdStore] = []

    def open_(**options: Any) -> EtcdStore:
        store = EtcdStore(etcd_server.client(), prefix=etcd_prefix, clock=clock, **options)
        opened.append(store)
        return store

    yield open_
    for s in opened:
        s.close()


class Interleaved:
    """Runs ``between`` once, just before the next txn that writes (after the read)."""

    def __init__(self, store: EtcdStore, between: Callable[[], None]) -> None:
        self.txn, self.between = store.client.txn, between
        store.client.txn = self  # type: ignore[method-assign]

    def __call__(self, compare: Any, success: Any, failure: Any = ()) -> Any:
        if compare and self.between is not None:
            between, self.between = self.between, None  # type: ignore[assignment]
            between()
        return self.txn(compare, success, failure)


def test_a_write_that_loses_its_txn_to_another_registry_is_staged_again_not_refused(
        etcd_stores: Callable[..., EtcdStore]) -> None:
    a, b = etcd_stores(), etcd_stores()
    web = a.write(Op.CREATE, object=service("web"))
    Interleaved(a, lambda: b.write(Op.UPDATE, object=service("web", replicas=5)))
    after = a.write(Op.UPDATE_STATUS, object={**web, "status": {"replicas": 1}} | {
        "metadata": {**web["metadata"], "resourceVersion": None}})
    assert after["status"]["replicas"] == 1
    assert after["spec"]["deploymentStrategy"]["replicas"] == 5  # b's write kept
    assert a.stats["txnRetries"] == 1
    assert b.get(KIND, "default", "web") == after


def test_a_write_conditioned_on_a_version_another_registry_replaced_is_a_conflict(
        etcd_stores: Callable[..., EtcdStore]) -> None:
    a, b = etcd_stores(), etcd_stores()
    web = a.write(Op.CREATE, object=service("web"))
    Interleaved(a, lambda: b.write(Op.UPDATE, object=service("web", replicas=5)))
    with pytest.raises(Conflict):
        a.write(Op.UPDATE, object=with_changes(web, spec__priority=3))
    assert a.get(KIND, "default", "web")["spec"]["deploymentStrategy"]["replicas"] == 5


def test_what_one_registry_last_knew_never_overrides_what_another_wrote_since(
        etcd_stores: Callable[..., EtcdStore]) -> None:
    """Writes are staged over the last known state of their objects (one round trip);
    the txn checks it, and a stale guess is read again, never answered."""
    a, b = etcd_stores(), etcd_stores()
    a.write(Op.CREATE, object=service("web"))
    a.write(Op.CREATE, object=service("db"))
    b.write(Op.DELETE, kind=KIND, namespace="default", name="web")
    b.write(Op.CREATE, object=service("new"))
    b.write(Op.UPDATE, object=service("db", replicas=7))
    with pytest.raises(NotFound):
        a.write(Op.UPDATE, object=service("web", replicas=3))
    with pytest.raises(AlreadyExists):
        a.write(Op.CREATE, object=service("new"))
    assert a.write(Op.APPLY, object=service("db", replicas=7))["action"] == "unchanged"
    assert a.write(Op.UPDATE, object=service("db", replicas=8))["metadata"]["generation"] == 3


def test_two_registries_share_the_epoch_and_a_wiped_prefix_gets_a_new_one_both_adopt(
        etcd_stores: Callable[..., EtcdStore], etcd_server: EtcdCluster,
        etcd_prefix: str) -> None:
    a = etcd_stores()
    ticks = iter(range(10, 1000, 10))
    b = etcd_stores(monotonic=lambda: float(next(ticks)))  # its epoch check always due
    assert a.epoch == b.epoch and len(a.epoch) == 16
    a.write(Op.CREATE, object=service("web"))
    old = a.epoch
    with etcd_server.client() as client:
        client.delete(etcd_prefix, prefix_end_of(etcd_prefix))
    a.write(Op.CREATE, object=service("db"))  # the write finds the epoch gone
    assert a.epoch != old
    assert [o["metadata"]["name"] for o in b.list_objects(KIND)[0]] == ["db"]
    assert b.epoch == a.epoch


def test_an_epoch_made_on_another_etcd_cluster_is_replaced_by_a_new_one(
        etcd_stores: Callable[..., EtcdStore], etcd_server: EtcdCluster,
        etcd_prefix: str) -> None:
    """A cluster restored from a backup has a new cluster id but the old keys: clients
    that knew the old store must relist."""
    ticks = iter(range(10, 1000, 10))
    store = etcd_stores(monotonic=lambda: float(next(ticks)))
    with etcd_server.client() as client:
        client.put(etcd_prefix + "epoch", "0123456789abcdef/1234")  # made on cluster 1234
    store.list_objects(KIND)
    assert store.epoch not in ("", "0123456789abcdef")
    assert etcd_stores().epoch == store.epoch


def prefix_end_of(prefix: str) -> bytes:
    from ecsm_actors.etcd.client import prefix_end

    return prefix_end(prefix.encode())


def test_a_full_etcd_refuses_writes_with_store_full_but_serves_reads_and_deletes(
        etcd_stores: Callable[..., EtcdStore], etcd_server: EtcdCluster) -> None:
    store = etcd_stores()
    store.write(Op.CREATE, object=service("web"))
    store.write(Op.CREATE, object=service("db"))
    nospace(etcd_server, "ACTIVATE")
    try:
        with pytest.raises(StoreFull, match="etcd"):
            store.write(Op.CREATE, object=service("new"))
        results = store.execute([create("more"), delete("db", "del-full"), create("again")])
        assert [type(r).__name__ for r in results] == ["StoreFull", "Outcome", "StoreFull"]
        assert [o["metadata"]["name"] for o in store.list_objects(KIND)[0]] == ["web"]
    finally:
        nospace(etcd_server, "DEACTIVATE")
    assert store.write(Op.CREATE, object=service("new"))["metadata"]["name"] == "new"


def nospace(server: EtcdCluster, action: str) -> None:
    """Raise or clear etcd's NOSPACE alarm (what a backend past its quota does)."""
    import requests

    url = server.endpoints[0]
    member = requests.post(f"{url}/v3/maintenance/status", json={}, timeout=5).json()
    reply = requests.post(f"{url}/v3/maintenance/alarm", timeout=5, json={
        "action": action, "memberID": member["header"]["member_id"], "alarm": "NOSPACE"})
    reply.raise_for_status()


def test_a_replay_after_etcd_compacted_its_version_gives_the_current_object_or_identity(
        etcd_stores: Callable[..., EtcdStore], etcd_server: EtcdCluster) -> None:
    store = etcd_stores()
    first = one(store, create("web", "c-1"))
    changed = one(store, create("db", "c-2"))
    store.write(Op.UPDATE, object=service("db", replicas=4))
    with etcd_server.client() as client:
        client.compact(store.resource_version)
    same = one(store, create("web", "c-1"))
    assert isinstance(same, Outcome) and same.replayed
    assert same.encoded == first.encoded  # type: ignore[union-attr]
    gone = one(store, create("db", "c-2"))
    assert isinstance(gone, Outcome) and gone.replayed
    assert gone.result == {"apiVersion": "ecsm.sh/v1", "kind": KIND, "metadata": {
        "namespace": "default", "name": "db",
        "resourceVersion": changed.result["metadata"]["resourceVersion"]}}  # type: ignore[union-attr]


def test_a_batch_larger_than_an_etcd_txn_is_committed_in_parts_unless_atomic(
        etcd_stores: Callable[..., EtcdStore]) -> None:
    store = etcd_stores()
    writes = [create(f"s{i:03d}") for i in range(150)]
    refused = one(store, batch(*writes, atomic=True))
    assert isinstance(refused, BadRequest) and "atomic" in refused.message
    result = one(store, batch(*writes, request_id="big-1"))
    assert isinstance(result, Outcome)
    assert all(r["ok"] for r in result.result["results"])
    assert len(store.list_versions(KIND)[0]) == 150
    again = one(store, batch(*writes, request_id="big-1"))
    assert isinstance(again, Outcome) and again.replayed
    assert again.result == result.result


@pytest.fixture
def event_records(etcd_server: EtcdCluster, etcd_prefix: str,
                  clock: FakeClock) -> Iterator[Callable[..., EtcdEventRecords]]:
    opened: list[EtcdEventRecords] = []

    def open_(**options: Any) -> EtcdEventRecords:
        records = EtcdEventRecords(etcd_server.client(), etcd_prefix, clock=clock,
                                   **{"limit": 100, "ttl": 3600.0, **options})
        opened.append(records)
        return records

    yield open_
    for r in opened:
        r.close()


def test_event_records_on_etcd_are_one_record_per_condition_seen_by_every_registry(
        event_records: Callable[..., EtcdEventRecords], clock: FakeClock) -> None:
    a, b = event_records(), event_records()
    assert a.record([occurrence("web")])[0].added
    clock.now += 5
    assert not b.record([occurrence("web", at=clock.now)])[0].added
    a.record([occurrence("db", at=clock.now + 1)])
    [web] = a.list("default", KIND, "web")
    assert web["count"] == 2 and b.list("default", KIND, "web") == [web]
    assert [r["involvedObject"]["name"] for r in b.list()] == ["web", "db"]
    clock.now += 3600.5
    assert [r["involvedObject"]["name"] for r in b.list()] == ["db"]  # web past its TTL


def test_event_records_on_etcd_expire_by_lease_and_beyond_the_limit_the_oldest_go(
        event_records: Callable[..., EtcdEventRecords], etcd_server: EtcdCluster,
        etcd_prefix: str, clock: FakeClock) -> None:
    records = event_records(limit=3, ttl=60.0)
    for i in range(5):
        records.record([occurrence(f"s{i}", at=clock.now + i)])
    assert len(records) == 5
    assert records.expire() == 2 and len(records) == 3
    assert [r["involvedObject"]["name"] for r in records.list()] == ["s2", "s3", "s4"]
    with etcd_server.client() as client:
        events = etcd_prefix + "events/"
        kv = client.range(events.encode(), prefix_end_of(events)).kvs[0]
        assert 0 < client.lease_ttl(kv.lease) <= 60 + 60 / 16 + 2


@pytest.mark.parametrize("atomic", [False, True])
def test_a_write_on_an_object_written_earlier_in_its_batch_answers_the_stored_version(
        store: AnyStore, atomic: bool) -> None:
    result = one(store, batch(create("a"), Write(op=Op.APPLY, fields={
        "object": service("a")}), atomic=atomic))
    assert isinstance(result, Outcome)
    created, applied = (r["result"] for r in result.result["results"])
    assert applied["action"] == "unchanged"
    stored = store.get(KIND, "default", "a")
    assert applied["object"] == created == stored
    assert stored["metadata"]["resourceVersion"] == result.result["resourceVersion"]
