"""The event frames a registry on etcd publishes, made from etcd watch events
(:func:`ecsm_actors.store.etcd_events.encode_revision`): the same bodies the LMDB store
publishes, the revision as seq and resourceVersion, the chain's prev/index/last, and only
the keys that are objects. Pure functions: no etcd, no sockets."""

from __future__ import annotations

import pytest

from ecsm_actors import protocol
from ecsm_actors.etcd import KeyValue, WatchEvent
from ecsm_actors.protocol import EventType
from ecsm_actors.store import etcd_layout
from ecsm_actors.store.etcd_events import Revision, by_revision, encode_revision

pytestmark = pytest.mark.timeout(10)

PREFIX = b"/p/"


def kv(key: bytes, name: str, created: int, modified: int, value: bool = True) -> KeyValue:
    obj = {"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
           "metadata": {"name": name, "namespace": "default", "resourceVersion": 0},
           "spec": {"image": "x"}}
    return KeyValue(key=key, value=etcd_layout.pack_object(obj) if value else b"",
                    create_revision=created, mod_revision=modified, version=1, lease=0)


def object_key(name: str) -> bytes:
    return PREFIX + b"objects/ECSMService/default/" + name.encode()


def put(name: str, created: int, modified: int) -> WatchEvent:
    return WatchEvent(type="PUT", kv=kv(object_key(name), name, created, modified),
                      prev_kv=None)


def decoded(revision: Revision | None) -> list[protocol.Event]:
    assert revision is not None
    return [protocol.decode_published([t, b])
            for t, b in zip(revision.topics, revision.bodies, strict=True)]


def test_a_created_key_is_added_and_a_changed_one_modified_at_their_revision() -> None:
    rev = encode_revision(PREFIX, "ep", 9, 7, [put("a", 9, 9), put("b", 3, 9)])
    events = decoded(rev)
    assert [(e.type, e.key, e.seq, e.resource_version) for e in events] == [
        (EventType.ADDED, "default/a", 9, 9), (EventType.MODIFIED, "default/b", 9, 9)]
    assert [e.object["metadata"]["resourceVersion"] for e in events] == [9, 9]
    assert [(e.prev, e.index, e.last) for e in events] == [(7, 0, False), (7, 1, True)]
    assert rev.topics == (b"ECSMService.ADDED", b"ECSMService.MODIFIED")
    assert {e.epoch for e in events} == {"ep"}


def test_a_deleted_key_carries_its_last_state_at_the_revision_of_the_delete() -> None:
    gone = WatchEvent(type="DELETE", kv=kv(object_key("a"), "a", 0, 12, value=False),
                      prev_kv=kv(object_key("a"), "a", 3, 5))
    [event] = decoded(encode_revision(PREFIX, "ep", 12, 9, [gone]))
    assert (event.type, event.key, event.seq, event.prev) == (EventType.DELETED, "default/a",
                                                              12, 9)
    assert event.object["metadata"]["name"] == "a"
    assert event.object["metadata"]["resourceVersion"] == 12


def test_keys_that_are_no_objects_make_no_event_and_a_revision_of_none_nothing() -> None:
    record = WatchEvent(type="PUT", kv=kv(PREFIX + b"requests/r1", "r", 4, 4), prev_kv=None)
    assert encode_revision(PREFIX, "ep", 4, 2, [record]) is None
    events = decoded(encode_revision(PREFIX, "ep", 4, 2, [record, put("a", 4, 4)]))
    assert [(e.key, e.index, e.last) for e in events] == [("default/a", 0, True)]


def test_an_unreadable_value_is_left_out_not_fatal() -> None:
    broken = WatchEvent(type="PUT", kv=KeyValue(key=object_key("x"), value=b"\xc1",
                                                create_revision=4, mod_revision=4,
                                                version=1, lease=0), prev_kv=None)
    events = decoded(encode_revision(PREFIX, "ep", 4, 2, [broken, put("a", 4, 4)]))
    assert [e.key for e in events] == ["default/a"]


def test_watch_events_are_grouped_by_revision_in_order() -> None:
    changes = [put("a", 4, 4), put("b", 4, 4), put("a", 4, 6)]
    assert [(rev, [c.kv.key[-1:] for c in group]) for rev, group in by_revision(changes)] == [
        (4, [b"a", b"b"]), (6, [b"a"])]
