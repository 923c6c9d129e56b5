"""The registry's etcd event source (:class:`~ecsm_actors.store.etcd_events.EtcdEventSource`)
against a real 3-member etcd cluster losing members: the watch resumes on another member
from the revision after the last seen, nothing lost, nothing twice, the chain unbroken; a
history compacted before the watch could resume restarts it from the present, the
heartbeat's revision jumping there (subscribers behind relist). One cluster per module."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from ecsm_actors import protocol
from ecsm_actors.errors import Unavailable
from ecsm_actors.etcd import EtcdClient
from ecsm_actors.store import etcd_layout
from ecsm_actors.store.etcd_events import EtcdEventSource
from tests.etcd_cluster import EtcdCluster
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(60)


def stored(name: str) -> bytes:
    return etcd_layout.pack_object({
        "apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
        "metadata": {"name": name, "namespace": "default", "resourceVersion": 0},
        "spec": {}})


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.term()


class Published:
    """What the registry's loop would publish: the source's messages, decoded."""

    def __init__(self, source: EtcdEventSource) -> None:
        self.source = source
        self.events: list[protocol.Event] = []

    def take(self) -> list[protocol.Event]:
        self.events += [protocol.decode_published(f) for f in self.source.receive()]
        return self.events


def put(client: EtcdClient, prefix: str, name: str) -> int:
    """A write, retried while the cluster elects a leader (none is lost or doubled: each
    put is of its own key)."""
    key = f"{prefix}objects/ECSMService/default/{name}".encode()

    def written() -> int | None:
        try:
            return client.put(key, stored(name))
        except Unavailable:
            return None
    return wait_until(written, timeout=10, what=f"{name} written")


Watched = tuple[EtcdEventSource, Published, EtcdClient]


@pytest.fixture
def watched(etcd_cluster: EtcdCluster, etcd_prefix: str,
            context: zmq.Context[Any]) -> Iterator[Watched]:
    """An event source of the test's prefix (not started), what it publishes, and a
    client to write with (both closed at teardown)."""
    source = EtcdEventSource(etcd_cluster.client(), etcd_prefix, epoch=lambda: "e",
                             context=context)
    writer = etcd_cluster.client()
    try:
        yield source, Published(source), writer
    finally:
        writer.close()
        source.close()


def test_the_watch_resumes_on_another_member_without_losing_or_repeating_an_event(
        etcd_cluster: EtcdCluster, etcd_prefix: str, watched: Watched) -> None:
    source, published, writer = watched
    source.start()
    revisions = [put(writer, etcd_prefix, "a")]
    wait_until(lambda: len(published.take()) == 1, what="the first event")
    assert source._watch is not None
    etcd_cluster.kill(etcd_cluster.endpoints.index(source._watch.endpoint))
    revisions += [put(writer, etcd_prefix, name) for name in ("b", "c", "d")]
    wait_until(lambda: len(published.take()) >= 4, what="the events after the kill")
    events = published.take()
    assert [e.seq for e in events] == revisions
    assert [e.prev for e in events[1:]] == revisions[:-1]
    assert source.published == revisions[-1]
    assert source.stats["watchRestarts"] >= 2


def test_a_history_compacted_before_the_watch_resumed_restarts_it_from_the_present(
        etcd_prefix: str, watched: Watched) -> None:
    source, published, writer = watched
    lost = put(writer, etcd_prefix, "lost")  # after the source's start revision
    writer.compact(writer.put(f"{etcd_prefix}filler", b""))  # "lost" compacted away
    source.start()
    wait_until(lambda: (published.take(), source.published)[1] >= lost,
               what="the restart past the compacted history")
    assert published.events == [] and source.stats["resyncs"] == 1
    restarted_at = source.published
    after = put(writer, etcd_prefix, "after")
    wait_until(lambda: published.take(), what="the next event")
    [event] = published.events
    assert (event.seq, event.prev) == (after, restarted_at)
