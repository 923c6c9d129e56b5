"""Pipelined (``registry.pipelined_sync``), the registry serves on while the log's sync runs,
and sends nothing that shows a write before the sync covering it is done: not its
acknowledgement, not its event, not a read answered meanwhile; once the sync is done each
request gets its one answer, the event ahead of the acknowledgement (a real registry in
the test's process, its disk's syncs held back by the test)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from ecsm_actors import protocol
from ecsm_actors.protocol import Op
from ecsm_actors.store.log_sync import LogSync
from tests.helpers import wait_until
from tests.registry_fixtures import InProcessRegistry
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(30)


class SlowDisk:
    """Stands in for the kernel's asynchronous syncs of the log: each is held until
    :meth:`complete`, which syncs for real and signals the log's eventfd."""

    def __init__(self, syncs: LogSync, fd: int) -> None:
        self.syncs, self.fd = syncs, fd
        self.submitted: list[int] = []
        self.done: list[int] = []
        syncs._aio = self  # type: ignore[assignment]

    def submit(self, ticket: int) -> bool:
        self.submitted.append(ticket)
        return True

    def completed(self, wait: bool = False) -> list[tuple[int, int]]:
        done, self.done = self.done, []
        return [(ticket, 0) for ticket in done]

    def complete(self) -> None:
        os.fdatasync(self.fd)
        self.done += self.submitted
        self.submitted = []
        os.eventfd_write(self.syncs.ready, 1)

    def close(self) -> None:
        pass


@pytest.fixture
def here(run_dir: Path) -> Iterator[InProcessRegistry]:
    registry = InProcessRegistry(run_dir, {"ECSM_ACTORS_REGISTRY_PIPELINED_SYNC": "true"})
    yield registry
    registry.close()


def subscribed(here: InProcessRegistry) -> zmq.Socket[Any]:
    """A subscriber that the registry's PUB socket has reached."""
    sub = here.subscriber()

    def reached() -> bool:
        here.server._heartbeat()
        return bool(sub.poll(0)) and sub.recv_multipart()[0] == protocol.HEARTBEAT_TOPIC

    wait_until(reached, timeout=5, what="the subscription")
    while sub.poll(0):
        sub.recv_multipart()
    return sub


def test_no_reply_event_or_read_leaves_before_the_sync_that_covers_its_write(
        here: InProcessRegistry) -> None:
    server = here.server
    sub = subscribed(here)
    disk = SlowDisk(server.store.log_sync, server.store._ckpt.log.fd)
    here.request(Op.CREATE, 1, object=service("web"))
    server.serve_batch()  # committed, its record logged, its sync under way
    assert disk.submitted, "the write's sync was not asked for"
    here.request(Op.GET, 2, kind="ECSMService", namespace="default", name="web")
    here.request(Op.CREATE, 3, object=service("api"))
    server.serve_batch()  # served meanwhile: a read of the write, another write
    assert not here.peer.poll(50), "a reply left before the sync of the write it shows"
    assert not sub.poll(0), "an event left before the sync of its write"

    disk.complete()
    fds = server._router_and_sync()
    wait_until(lambda: server._serve_held(fds, 0.1) or not server._held, timeout=5,
               what="the held answers released by the loop's wait")
    events = [protocol.decode_published(sub.recv_multipart()) for _ in range(2)]
    assert [e.seq for e in events] == [1, 2] and not sub.poll(0)
    replies = {}
    for _ in range(3):
        assert here.peer.poll(1000)
        reply = msgpack.unpackb(here.peer.recv_multipart()[-1])
        replies[reply["id"]] = reply
    assert not here.peer.poll(50), "more replies than requests"
    assert sorted(replies) == [1, 2, 3] and all(r["ok"] for r in replies.values())
    assert replies[2]["result"]["metadata"]["resourceVersion"] == 1


def test_with_the_sync_done_a_read_is_answered_at_once(here: InProcessRegistry) -> None:
    server = here.server
    here.request(Op.CREATE, 1, object=service("web"))
    server.serve_batch()
    here.replies(1)  # once durable
    assert not server._held
    here.request(Op.GET, 2, kind="ECSMService", namespace="default", name="web")
    server.serve_batch()
    assert not server._held and here.peer.poll(1000), "a read held with nothing to sync"


def test_answers_whose_sync_a_wait_of_the_store_collected_are_still_sent(
        here: InProcessRegistry) -> None:
    server = here.server
    disk = SlowDisk(server.store.log_sync, server.store._ckpt.log.fd)
    here.request(Op.CREATE, 1, object=service("web"))
    server.serve_batch()
    assert server._held and not here.peer.poll(50)
    disk.complete()
    # The store waits for its syncs itself at times (the log's blocks given back at an
    # idle heartbeat, a write retried alone): that wait reads the eventfd the loop polls.
    server.store.wait_synced()
    fds = server._router_and_sync()
    wait_until(lambda: server._serve_held(fds, 0.1) or not server._held, timeout=2,
               what="the held answer sent though the eventfd was read")
    assert here.peer.poll(1000)
    assert msgpack.unpackb(here.peer.recv_multipart()[-1])["id"] == 1
