"""The store's request window (exactly once), BATCH and LIST paging, on a real LMDB store
with a fake clock: a repeated requestId is answered with its recorded outcome, never
applied twice; the window is bounded by count and age and pruned a little per write."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.errors import BadRequest, Conflict, NotFound, RegistryError, StoreFull
from ecsm_actors.protocol import Op, Request
from ecsm_actors.store import Outcome, RawList, Store, Write
from ecsm_actors.store.window import PRUNE_STEP
from tests.registry_samples import service, with_changes

KIND = "ECSMService"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


OpenStore = Callable[..., Store]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def open_store(tmp_path: Path, clock: FakeClock) -> Iterator[OpenStore]:
    opened: list[Store] = []

    def open_(**options: Any) -> Store:
        for s in opened:
            s.close()
        opened.clear()
        store = Store(tmp_path / "data", **{"map_size": 16 << 20, "clock": clock, **options})
        opened.append(store)
        return store

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store: OpenStore) -> Store:
    return open_store()


def create(name: str, request_id: str | None = None, **meta: Any) -> Write:
    fields: dict[str, Any] = {"object": service(name, **meta)}
    if request_id is not None:
        fields["requestId"] = request_id
    return Write(op=Op.CREATE, fields=fields)


def update(obj: dict[str, Any], request_id: str) -> Write:
    return Write(op=Op.UPDATE, fields={"object": obj, "requestId": request_id})


def delete(name: str, request_id: str | None = None) -> Write:
    fields: dict[str, Any] = {"kind": KIND, "namespace": "default", "name": name,
                              "resourceVersion": None}
    if request_id is not None:
        fields["requestId"] = request_id
    return Write(op=Op.DELETE, fields=fields)


def batch(*writes: Write, atomic: bool = False, request_id: str | None = None) -> Write:
    fields: dict[str, Any] = {"writes": [Request(id=i, op=w.op, fields=w.fields)
                                         for i, w in enumerate(writes)], "atomic": atomic}
    if request_id is not None:
        fields["requestId"] = request_id
    return Write(op=Op.BATCH, fields=fields)


def one(store: Store, write: Write) -> Outcome | RegistryError:
    return store.execute([write])[0]


def events(store: Store) -> int:
    return len(store.watch_since(store.compacted)[0])


# -- exactly once ------------------------------------------------------------------------


def test_a_retried_create_is_answered_with_its_first_outcome_and_applied_once(
        store: Store) -> None:
    first = one(store, create("web", "req-1"))
    again = one(store, create("web", "req-1"))
    assert isinstance(first, Outcome) and not first.replayed
    assert isinstance(again, Outcome) and again.replayed
    assert again.encoded == first.encoded
    assert store.resource_version == 1 and events(store) == 1


def test_a_retried_unconditional_update_is_not_applied_twice(store: Store) -> None:
    obj = store.write(Op.CREATE, object=service("web"))
    changed = with_changes(obj, spec__deploymentStrategy__replicas=5)
    del changed["metadata"]["resourceVersion"]
    first = one(store, update(changed, "upd-1"))
    again = one(store, update(changed, "upd-1"))
    assert isinstance(first, Outcome) and isinstance(again, Outcome) and again.replayed
    assert again.result["metadata"]["generation"] == 2 == first.result["metadata"]["generation"]
    assert store.resource_version == 2


def test_a_recorded_refusal_is_replayed_as_the_same_typed_error_marked_replayed(
        store: Store) -> None:
    store.write(Op.CREATE, object=service("web"))
    stale = with_changes(service("web"), metadata__resourceVersion=99)
    first = one(store, update(stale, "conflict-1"))
    store.write(Op.UPDATE, object=with_changes(service("web"), spec__template__image="b@2"))
    again = one(store, update(stale, "conflict-1"))
    assert isinstance(first, Conflict) and not first.replayed
    assert isinstance(again, Conflict) and again.replayed
    assert again.message == first.message


def test_a_delete_retried_after_it_landed_replays_success_instead_of_not_found(
        store: Store) -> None:
    store.write(Op.CREATE, object=service("web"))
    assert isinstance(one(store, delete("web", "del-1")), Outcome)
    again = one(store, delete("web", "del-1"))
    assert isinstance(again, Outcome) and again.replayed and again.result is None
    assert isinstance(one(store, delete("web", "del-2")), NotFound)


def test_two_copies_of_one_request_in_the_same_group_commit_apply_once(store: Store) -> None:
    first, second = store.execute([create("web", "dup"), create("web", "dup")])
    assert isinstance(first, Outcome) and not first.replayed and len(first.events) == 1
    assert isinstance(second, Outcome) and second.replayed and second.events == ()
    assert second.encoded == first.encoded
    assert store.resource_version == 1


def test_the_window_survives_closing_and_reopening_the_store(open_store: OpenStore) -> None:
    first = one(open_store(), create("web", "persist-1"))
    reopened = open_store()
    again = one(reopened, create("web", "persist-1"))
    assert isinstance(first, Outcome) and isinstance(again, Outcome)
    assert again.replayed and again.encoded == first.encoded


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


def test_a_request_id_reused_for_another_object_is_a_bad_request(store: Store) -> None:
    one(store, create("web", "same-id"))
    reused = one(store, create("db", "same-id"))
    assert isinstance(reused, BadRequest) and "already used" in reused.message
    assert store.resource_version == 1


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


def test_a_record_older_than_request_window_age_is_never_replayed(
        open_store: OpenStore, clock: FakeClock) -> None:
    store = open_store(request_window_age=3600)
    one(store, create("web", "old"))
    store.write(Op.DELETE, kind=KIND, namespace="default", name="web")
    clock.now += 3601
    again = one(store, create("web", "old"))
    assert isinstance(again, Outcome) and not again.replayed
    with store._env.begin() as txn:  # noqa: SLF001
        assert store.window.count(txn) == 1  # the old record pruned, the new one kept


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


# -- BATCH -------------------------------------------------------------------------------


def test_a_non_atomic_batch_applies_each_write_on_its_own(store: Store) -> None:
    store.write(Op.CREATE, object=service("taken"))
    result = one(store, batch(create("a"), create("taken"), delete("missing"), create("b")))
    assert isinstance(result, Outcome)
    oks = [r["ok"] for r in result.result["results"]]
    assert oks == [True, False, False, True]
    codes = [r["error"]["code"] for r in result.result["results"] if not r["ok"]]
    assert codes == ["AlreadyExists", "NotFound"]
    assert result.result["resourceVersion"] == store.resource_version == 3
    assert len(result.events) == 2


def test_an_atomic_batch_with_one_failing_write_applies_none_and_aborts_the_others(
        store: Store) -> None:
    store.write(Op.CREATE, object=service("taken"))
    result = one(store, batch(create("a"), create("taken"), create("b"), atomic=True))
    assert isinstance(result, Outcome) and result.events == ()
    codes = [r["error"]["code"] for r in result.result["results"]]
    assert codes == ["Aborted", "AlreadyExists", "Aborted"]
    assert "writes[1] (AlreadyExists)" in result.result["results"][0]["error"]["message"]
    assert store.resource_version == 1
    assert [o["metadata"]["name"] for o in store.list_objects(KIND)[0]] == ["taken"]


def test_an_atomic_batch_that_succeeds_applies_all_in_one_transaction(store: Store) -> None:
    result = one(store, batch(create("a"), create("b"), delete("a"), atomic=True))
    assert isinstance(result, Outcome)
    assert [r["ok"] for r in result.result["results"]] == [True, True, True]
    assert [e.event.seq for e in result.events] == [1, 2, 3]
    assert [o["metadata"]["name"] for o in store.list_objects(KIND)[0]] == ["b"]


def test_a_retried_batch_returns_the_same_per_write_outcomes_replayed(store: Store) -> None:
    store.write(Op.CREATE, object=service("taken"))
    writes = (create("a"), create("taken"), create("b"))
    first = one(store, batch(*writes, request_id="batch-1"))
    again = one(store, batch(*writes, request_id="batch-1"))
    assert isinstance(again, Outcome) and again.replayed and again.events == ()
    assert again.encoded == first.encoded  # type: ignore[union-attr]
    assert store.resource_version == 3


# -- LIST paging -------------------------------------------------------------------------


def test_pages_cover_every_object_once_even_with_creates_and_deletes_between_pages(
        store: Store) -> None:
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
        store: Store) -> None:
    store.execute([create(f"o{i}") for i in range(5)])
    first = store.list_page(KIND, None, limit=2)
    assert (first.count, first.remaining) == (2, 3) and first.continue_token
    last = store.list_page(KIND, None, limit=3, continue_token=first.continue_token)
    assert (last.count, last.remaining, last.continue_token) == (3, 0, "")
    versions = store.list_page(KIND, None, limit=10, versions=True)
    assert versions.versions == [(f"default/o{i}", i + 1) for i in range(5)]


def test_a_continue_token_of_another_list_or_forged_is_a_bad_request(store: Store) -> None:
    store.execute([create("a", namespace="x"), create("b", namespace="x"), create("c")])
    token = store.list_page(KIND, "x", limit=1).continue_token
    with pytest.raises(BadRequest, match="another list"):
        store.list_page("ECSMHpa", None, limit=1, continue_token=token)
    with pytest.raises(BadRequest, match="not one this registry gave"):
        store.list_page(KIND, None, limit=1, continue_token="garbage")
