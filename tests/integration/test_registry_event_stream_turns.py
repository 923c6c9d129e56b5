"""The registry's loop serving its local event stream between turns
(``RegistryServer._serve_local``): with the request stream off, a request queued at
every turn still leaves the event stream's subscribers served (accepted, read, written),
as the request stream's connections are."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from ecsm_actors import protocol
from ecsm_actors.config import load_config
from ecsm_actors.registry.server import RegistryServer
from ecsm_actors.registry.stream import stream_path
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def server(run_dir: Path) -> Iterator[RegistryServer]:
    """A registry of this process, not serving: the test runs its loop's waits."""
    cfg = load_config(None, environ={"ECSM_ACTORS_RUN_DIR": str(run_dir),
                                     "ECSM_ACTORS_REGISTRY_STREAM_ENDPOINT": "off"})
    server = RegistryServer(cfg)
    try:
        yield server
    finally:
        server.close()


def test_a_request_queued_at_each_turn_does_not_starve_the_event_stream(
        server: RegistryServer) -> None:
    assert server.stream is None and server.event_stream is not None
    fds = server._router_alone()
    assert fds is not None
    subscriber = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    subscriber.connect(str(stream_path(server.event_stream.endpoint)))
    client = server.context.socket(zmq.DEALER)
    client.setsockopt(zmq.LINGER, 0)
    client.connect(server.cfg.registry_endpoint)
    try:
        for i in range(3):  # each turn finds a request queued
            client.send_multipart([b"", protocol.pack({"v": 1, "id": f"p{i}", "op": "PING"})])
            wait_until(lambda: bool(server.router.get(zmq.EVENTS) & zmq.POLLIN),
                       timeout=5, what="the request queued")
            server._router_armed = False  # as after a turn that sent its replies
            server._serve_local(fds, 0.0)
            assert client.poll(5000) and client.recv_multipart()
        assert len(server.event_stream.connections) == 1  # accepted meanwhile
    finally:
        client.close()
        subscriber.close()
