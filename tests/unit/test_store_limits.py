"""Store limits and identity: event-log compaction and Expired, a full map, the epoch,
one registry per store."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecsm_actors.errors import Expired, Internal, StoreFull
from ecsm_actors.protocol import Op
from ecsm_actors.store import Outcome, Store, Write
from ecsm_actors.store.lmdb_store import REOPEN_AFTER
from tests.registry_samples import service

MiB = 1 << 20


def big_service(name: str, kib: int) -> dict:
    return service(name, annotations={"blob": "x" * (kib << 10)})


def open_store(path: Path, **kw: object) -> Store:
    options: dict = {"map_size": 16 * MiB, "clock": lambda: 1_700_000_000.0, **kw}
    return Store(path, **options)


def test_the_event_log_is_bounded_and_older_versions_are_expired(tmp_path: Path) -> None:
    store = open_store(tmp_path, event_log_limit=3)
    for i in range(5):
        store.write(Op.CREATE, object=service(f"s{i}"))
    assert store.compacted == 2
    events, rv = store.watch_since(2)
    assert [e.seq for e in events] == [3, 4, 5] and rv == 5
    assert store.watch_since(5) == ([], 5)
    with pytest.raises(Expired):
        store.watch_since(1)
    store.close()


def test_a_full_event_log_drops_its_oldest_events_a_batch_at_a_time(tmp_path: Path) -> None:
    store = open_store(tmp_path, map_size=32 * MiB, event_log_limit=300)  # batches of 3
    for i in range(301):
        store.write(Op.CREATE, object=service(f"s{i}"))
    assert store.compacted == 4  # the one beyond the limit, and three more
    for i in range(301, 304):  # the next writes drop none
        store.write(Op.CREATE, object=service(f"s{i}"))
        assert store.compacted == 4
    events, rv = store.watch_since(4)
    assert [e.seq for e in events] == list(range(5, 305)) and rv == 304
    with pytest.raises(Expired):
        store.watch_since(3)
    store.write(Op.CREATE, object=service("s304"))
    assert store.compacted == 8
    store.close()


def test_a_replay_page_cut_short_says_how_far_it_goes(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    for i in range(5):
        store.write(Op.CREATE, object=service(f"s{i}"))
    events, upto = store.watch_since(1, max_events=2)
    assert ([e.seq for e in events], upto) == ([2, 3], 3)
    events, upto = store.watch_since(3, max_bytes=1)
    assert ([e.seq for e in events], upto) == ([4], 4)
    assert [e.seq for e in store.watch_since(4, max_events=2)[0]] == [5]
    assert store.watch_since(4, max_events=2)[1] == 5
    store.close()


def test_a_version_from_the_future_is_expired(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    store.write(Op.CREATE, object=service("a"))
    with pytest.raises(Expired):
        store.watch_since(2)
    store.close()


def test_versions_log_and_floor_survive_a_reopen(tmp_path: Path) -> None:
    store = open_store(tmp_path, event_log_limit=2)
    for i in range(4):
        store.write(Op.CREATE, object=service(f"s{i}"))
    epoch = store.epoch
    store.close()
    again = open_store(tmp_path, event_log_limit=2)
    assert (again.epoch, again.resource_version, again.compacted) == (epoch, 4, 2)
    assert again.write(Op.CREATE, object=service("next"))["metadata"]["resourceVersion"] == 5
    assert [e.seq for e in again.watch_since(3)[0]] == [4, 5]
    again.close()


def test_a_wiped_store_gets_a_new_epoch(tmp_path: Path) -> None:
    first = open_store(tmp_path / "a")
    second = open_store(tmp_path / "b")
    assert first.epoch != second.epoch and len(first.epoch) == 16
    first.close()
    second.close()


def test_a_second_registry_cannot_open_the_same_store(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    with pytest.raises(Internal, match="in use"):
        open_store(tmp_path)
    store.close()
    open_store(tmp_path).close()


@pytest.mark.parametrize(("map_mib", "commit_interval"), [(1, 0.0), (1, 0.025), (4, 3600.0)])
def test_a_nearly_full_store_refuses_writes_but_stays_readable_and_deletable(
        tmp_path: Path, map_mib: int, commit_interval: float) -> None:
    """Also with the writes gathered in a batch (4 MiB: data.mdb's end as last committed
    is what is checked, kept by the store, not read at each turn)."""
    store = open_store(tmp_path, map_size=map_mib * MiB, full_ratio=0.5, event_log_limit=4,
                       commit_interval=commit_interval)
    created = []
    with pytest.raises(StoreFull, match="map_size"):
        for i in range(100 * map_mib):
            store.write(Op.CREATE, object=big_service(f"s{i}", 20))
            created.append(f"s{i}")
    rv = store.resource_version
    assert rv == len(created) > 5
    assert len(store.list_objects("ECSMService")[0]) == len(created)
    with pytest.raises(StoreFull):
        store.write(Op.UPDATE, object=big_service("s0", 21))
    assert store.resource_version == rv
    for name in created[:-2]:
        store.write(Op.DELETE, kind="ECSMService", namespace="default", name=name)
    assert store.write(Op.CREATE, object=service("fits-again"))["metadata"]["name"]
    store.close()


@pytest.mark.parametrize(("map_mib", "commit_interval"), [(1, 0.0), (4, 3600.0)])
def test_a_map_full_error_refuses_the_write_and_leaves_the_store_intact(
        tmp_path: Path, map_mib: int, commit_interval: float) -> None:
    """Also with the writes gathered in a batch: the write that does not fit is taken out
    of it and refused, the acknowledged ones before it kept."""
    store = open_store(tmp_path, map_size=map_mib * MiB, full_ratio=1.0,
                       event_log_limit=1000, commit_interval=commit_interval)
    names = []
    with pytest.raises(StoreFull):
        for i in range(200 * map_mib):
            store.write(Op.CREATE, object=big_service(f"s{i}", 20))
            names.append(f"s{i}")
    rv, epoch = store.resource_version, store.epoch
    assert rv == len(names)
    assert store.get("ECSMService", "default", names[-1])["metadata"]["resourceVersion"] == rv
    store.close()
    again = open_store(tmp_path, map_size=map_mib * MiB, full_ratio=1.0, event_log_limit=1000)
    assert (again.resource_version, again.epoch) == (rv, epoch)
    stored = again.list_objects("ECSMService")[0]
    assert sorted(o["metadata"]["name"] for o in stored) == sorted(names)
    assert [e.seq for e in again.watch_since(0)[0]] == list(range(1, rv + 1))
    again.close()


def test_in_a_batch_only_the_write_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    store = open_store(tmp_path, map_size=1 * MiB, full_ratio=1.0, event_log_limit=1000)
    for i in range(10):
        store.write(Op.CREATE, object=big_service(f"fill{i}", 20))
    results = store.execute([
        Write(op=Op.CREATE, fields={"object": service("small-1")}),
        Write(op=Op.CREATE, fields={"object": big_service("huge", 900)}),
        Write(op=Op.CREATE, fields={"object": service("small-2")}),
    ])
    assert isinstance(results[1], StoreFull)
    first, third = results[0], results[2]
    assert isinstance(first, Outcome) and isinstance(third, Outcome)
    assert [r.result["metadata"]["resourceVersion"] for r in (first, third)] == [11, 12]
    assert [e.seq for e in store.watch_since(10)[0]] == [11, 12]
    store.close()


def checking_data_end(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each data.mdb end the nearly-full check is handed: True when it is the end as
    last committed, else (handed, committed)."""
    checked: list[object] = []
    nearly_full = Store._nearly_full  # noqa: SLF001

    def checking(self: Store, txn: object, high_water: int | None = None) -> bool:
        if high_water is not None:
            committed = (self._env.info()["last_pgno"] + 1) * self._page_size  # noqa: SLF001
            checked.append(high_water == committed or (high_water, committed))
        return nearly_full(self, txn, high_water)

    monkeypatch.setattr(Store, "_nearly_full", checking)
    return checked


def test_the_nearly_full_check_sees_data_mdb_end_as_committed_after_every_commit_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With batched commits the store keeps data.mdb's end itself (not read each turn):
    after a restore, a flush, a dry run, the idle prune of the request window, the
    environment opened again and a checkpoint, it is still the end as last committed."""
    checked = checking_data_end(monkeypatch)
    store = open_store(tmp_path, commit_interval=3600.0, request_window=200)
    try:
        store.restore([{**service(f"r{i}"), "metadata": {
            "name": f"r{i}", "namespace": "default", "uid": f"u{i}",
            "creationTimestamp": "2023-11-14T22:13:20Z", "generation": 1}}
            for i in range(200)])
        store.write(Op.CREATE, object=big_service("after-restore", 20))
        store.write(Op.CREATE, object=big_service("in-the-batch", 20))
        store.flush()
        store.write(Op.CREATE, object=big_service("after-flush", 20))
        assert isinstance(store.dry_run(Write(op=Op.CREATE, fields={
            "object": big_service("dry", 20)})), Outcome)
        store.write(Op.CREATE, object=big_service("after-dry-run", 20))
        store.execute([Write(op=Op.CREATE, fields={"object": big_service(f"w{i}", 4),
                                                   "requestId": f"req-{i}"})
                       for i in range(REOPEN_AFTER + 8)])  # a large transaction
        store.release_pages()  # the environment opened again
        store.write(Op.CREATE, object=big_service("after-reopen", 20))
        for i in range(201 - (REOPEN_AFTER + 8)):  # over by less than the writes prune
            store.write(Op.CREATE, object=service(f"x{i}"), requestId=f"again-{i}")
        assert store.window.over()
        store.release_pages()  # the window pruned in a transaction of its own
        assert not store.window.over()
        store.write(Op.CREATE, object=big_service("after-prune", 20))
        store.checkpoint()
        store.write(Op.CREATE, object=big_service("after-checkpoint", 20))
    finally:
        store.close()
    assert len(checked) >= 7 and all(c is True for c in checked), checked


def test_the_nearly_full_check_sees_data_mdb_end_as_committed_once_turns_commit_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Near the map's end a turn commits the batch before it and then its own: the
    check after that commit sees data.mdb's end as it committed, up to a full map."""
    checked = checking_data_end(monkeypatch)
    store = open_store(tmp_path, map_size=4 * MiB, full_ratio=0.9, event_log_limit=4,
                       commit_interval=3600.0)
    try:
        with pytest.raises(StoreFull, match="map_size"):
            for i in range(400):
                store.write(Op.CREATE, object=big_service(f"s{i}", 20))
    finally:
        store.close()
    assert len(checked) > 50 and all(c is True for c in checked), checked
