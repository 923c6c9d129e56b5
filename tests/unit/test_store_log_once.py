"""The event log keeps no second copy of an object's current version (lmdb_store's module
docstring): yet every event replayed from it is the body that was published."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from ecsm_actors.protocol import Op
from ecsm_actors.store import Outcome, Store, Write
from tests.registry_samples import service

NOW = 1_700_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "data", map_size=32 << 20, event_log_limit=50, clock=lambda: NOW)
    yield s
    s.close()


def published(store: Store, writes: list[Write]) -> dict[int, bytes]:
    """seq → event body, of what ``writes`` published."""
    out: dict[int, bytes] = {}
    for result in store.execute(writes):
        if isinstance(result, Outcome):
            for ev in result.events:
                out[msgpack.unpackb(ev.body)["seq"]] = ev.body
    return out


def replayed(store: Store, since: int) -> dict[int, bytes]:
    unpacker = msgpack.Unpacker()
    unpacker.feed(store.watch_since_raw(since).data)
    out: dict[int, bytes] = {}
    for doc in unpacker:
        out[doc["seq"]] = msgpack.packb(doc)
    return out


def big(name: str, replicas: int = 1) -> dict:
    obj = service(name, replicas=replicas)
    obj["metadata"]["annotations"] = {"note": "x" * 800}  # about 1.4 KiB stored
    return obj


def test_each_event_replayed_is_the_body_published_through_updates_deletes_and_compaction(
        store: Store) -> None:
    sent: dict[int, bytes] = {}
    sent |= published(store, [Write(op=Op.CREATE, fields={"object": big(f"s{i}")})
                              for i in range(5)])
    for r in range(2, 8):  # the last version of each superseded again and again
        sent |= published(store, [Write(op=Op.UPDATE, fields={"object": big(f"s{i}", r)})
                                  for i in range(0, 5, 2)])
    current = store.get("ECSMService", "default", "s1")
    current["status"] = {"replicas": 3}
    sent |= published(store, [Write(op=Op.UPDATE_STATUS, fields={"object": current})])
    sent |= published(store, [Write(op=Op.DELETE, fields={
        "kind": "ECSMService", "namespace": "default", "name": "s3"})])
    sent |= published(store, [Write(op=Op.BATCH, fields={"atomic": True, "writes": [
        Write(op=Op.UPDATE, fields={"object": big("s0", 9)}),
        Write(op=Op.CREATE, fields={"object": big("s1")})]})])  # refused: all aborted
    sent |= published(store, [Write(op=Op.APPLY, fields={"object": big("s4", 9)})])
    assert replayed(store, 0) == {seq: msgpack.packb(msgpack.unpackb(body))
                                  for seq, body in sent.items()}
    for i in range(60):  # compaction drops the oldest, stubs and whole ones alike
        sent |= published(store, [Write(op=Op.UPDATE, fields={"object": big("s2", 10 + i)})])
    floor = store.compacted
    assert floor > 0
    assert replayed(store, floor) == {seq: msgpack.packb(msgpack.unpackb(body))
                                      for seq, body in sent.items() if seq > floor}


def test_the_log_holds_no_copy_of_an_object_while_it_is_current(tmp_path: Path) -> None:
    store = Store(tmp_path / "data", map_size=32 << 20, clock=lambda: NOW)
    try:
        store.execute([Write(op=Op.CREATE, fields={"object": big(f"s{i}")})
                       for i in range(300)])
        with store._env.begin() as txn:  # noqa: SLF001 - the log's size is the point
            stat = txn.stat(store._events)  # noqa: SLF001
        assert stat["entries"] == 300
        assert stat["leaf_pages"] + stat["overflow_pages"] <= 4, stat  # whole: 100 pages
    finally:
        store.close()


def test_a_superseded_version_is_still_answered_to_a_retry_of_its_write(
        store: Store) -> None:
    first = store.write(Op.CREATE, object=big("web"), requestId="create-web")
    store.write(Op.UPDATE, object=big("web", 5))
    again = store.execute([Write(op=Op.CREATE, fields={"object": big("web"),
                                                        "requestId": "create-web"})])[0]
    assert isinstance(again, Outcome) and again.replayed
    assert again.result == first


def test_the_log_reads_the_same_after_the_store_is_opened_again(tmp_path: Path) -> None:
    store = Store(tmp_path / "data", map_size=32 << 20, clock=lambda: NOW)
    sent = published(store, [Write(op=Op.CREATE, fields={"object": big("web")})])
    sent |= published(store, [Write(op=Op.UPDATE, fields={"object": big("web", 4)})])
    store.close()
    store = Store(tmp_path / "data", map_size=32 << 20, clock=lambda: NOW)
    try:
        sent |= published(store, [Write(op=Op.UPDATE, fields={"object": big("web", 6)})])
        assert replayed(store, 0) == {seq: msgpack.packb(msgpack.unpackb(body))
                                      for seq, body in sent.items()}
    finally:
        store.close()
