"""The registry's loop on its zmq.Poller path (etcd's watch events, remote endpoints): a
round's poll results are dispatched only to the descriptors they were polled for. An
event published in the round can close a stream subscriber; a connection accepted in the
same round could then be given its descriptor number, and the dead subscriber's bits
(hang-up, error, input) be dispatched to the new connection."""

from __future__ import annotations

import os
import select
import socket
from typing import Any

import pytest
import zmq

from ecsm_actors import lifecycle, protocol
from ecsm_actors.registry.server import RegistryServer
from ecsm_actors.registry.stream import stream_path

pytestmark = pytest.mark.timeout(30)

TOPIC = protocol.kind_topic("Pod")


class OneRound(lifecycle.StopFlag):
    """Set once the loop looked at it twice: one round of the loop runs."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks > 1


class WatchEvents:
    """In place of the etcd watch: one event queued on an inproc socket."""

    def __init__(self, context: zmq.Context[Any]) -> None:
        self.socket = context.socket(zmq.PAIR)
        self.socket.bind("inproc://watch")
        self.sender = context.socket(zmq.PAIR)
        self.sender.connect("inproc://watch")
        self.published, self.stats = 0, {}

    def start(self) -> None:
        pass

    def receive(self) -> list[list[bytes]]:
        return [[TOPIC, self.socket.recv()]]

    def close(self) -> None:
        self.sender.close(linger=0)
        self.socket.close(linger=0)


def test_a_connection_accepted_in_a_round_gets_no_poll_result_of_the_round(
        server: RegistryServer) -> None:
    stream, event_stream = server.stream, server.event_stream
    assert stream is not None and event_stream is not None
    source = server.event_source = WatchEvents(server.context)  # type: ignore[assignment]
    # A subscriber of Pod events, accepted and subscribed, then gone.
    subscriber = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    subscriber.connect(str(stream_path(event_stream.endpoint)))
    event_stream.on_event(event_stream.fd, select.POLLIN)
    (gone,) = event_stream.connections
    subscription = protocol.encode_subscription([TOPIC], 10)
    subscriber.sendall(protocol.frame_head(len(subscription)) + subscription)
    event_stream.on_event(gone, select.POLLIN)
    assert event_stream.subscribed
    subscriber.close()
    # A request stream client connecting (it takes the descriptor number freed above),
    # and a watch event queued: one poll sees all three.
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(str(stream_path(stream.endpoint)))
    spare = os.dup(0)
    os.close(spare)
    assert spare > gone  # the next descriptor the registry is given: the subscriber's
    source.sender.send(b"event")
    dispatched: list[tuple[int, int]] = []
    on_event = stream.on_event

    def spy(fd: int, events: int) -> None:
        dispatched.append((fd, events))
        on_event(fd, events)

    stream.on_event = spy  # type: ignore[method-assign]
    try:
        server.serve(OneRound())
        assert gone not in event_stream.connections
        accepted = set(stream.connections)
        assert accepted
        assert [fd for fd, _ in dispatched if fd in accepted] == []
    finally:
        client.close()
