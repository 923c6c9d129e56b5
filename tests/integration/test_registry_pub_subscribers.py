"""The registry's PUB socket sends only while someone subscribes there: its XPUB reports
each topic's first subscriber and last one gone, taken by the loop's waits
(``RegistryServer._serve_local``); a subscriber whose subscription was taken gets every
event published after it, and once it is gone nothing is sent there any more."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import zmq
import zmq.utils.monitor

from ecsm_actors import protocol
from ecsm_actors.config import load_config
from ecsm_actors.registry.server import RegistryServer
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(30)


def test_the_pub_socket_is_sent_to_only_while_someone_subscribes(
        server: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[list[bytes]] = []
    publish_on = server._publish_on

    def recorded(pub: zmq.Socket[Any], frames: list[bytes]) -> None:
        sent.append(frames)
        publish_on(pub, frames)

    monkeypatch.setattr(server, "_publish_on", recorded)
    # What serve() sets before its first wait.
    monkeypatch.setattr(server, "_router_armed", False, raising=False)
    monkeypatch.setattr(server, "_collector", SimpleNamespace(collect=lambda: None),
                        raising=False)
    fds = server._router_alone()
    assert fds is not None
    event = [b"ECSMService/ADDED", b"body"]
    server._publish(event)
    assert sent == []  # no one subscribes: nothing sent

    sub = server.context.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"ECSMService/")
    sub.connect(server.cfg.events_endpoint)
    try:
        def taken() -> bool:
            server._serve_local(fds, 0.05)
            return bool(server._pub_topics)

        wait_until(taken, timeout=5, what="the subscription taken by the loop's wait")
        for i in range(3):
            server._publish([event[0], b"body %d" % i])
        assert [sub.recv_multipart() for _ in range(3)] == [
            [event[0], b"body %d" % i] for i in range(3)]
        server._publish(protocol.encode_heartbeat(server.store.epoch, 3))
        assert len(sent) == 4  # the heartbeat too (its topic not subscribed: filtered)
    finally:
        sub.close()

    def gone() -> bool:
        server._serve_local(fds, 0.05)
        return not server._pub_topics

    wait_until(gone, timeout=5, what="the subscriber's leaving taken by the loop's wait")
    server._publish(event)
    assert len(sent) == 4


def test_a_subscription_is_taken_while_requests_keep_the_loop_busy(
        run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Both stream endpoints off: the loop serves a queued request without waiting, so the
    # PUB socket's subscriptions must be taken in its turns too, not at the heartbeat only.
    cfg = load_config(None, environ={"ECSM_ACTORS_RUN_DIR": str(run_dir),
                                     "ECSM_ACTORS_REGISTRY_STREAM_ENDPOINT": "off",
                                     "ECSM_ACTORS_REGISTRY_STREAM_EVENTS_ENDPOINT": "off"})
    server = RegistryServer(cfg)
    client = server.context.socket(zmq.DEALER)
    sub = server.context.socket(zmq.SUB)
    try:
        turns: list[bool] = []
        # A request queued at every turn (this one is never taken).
        monkeypatch.setattr(server, "serve_batch", lambda **kw: turns.append(True))
        monkeypatch.setattr(server, "_router_armed", False, raising=False)
        fds = server._router_alone()
        assert fds is not None
        for s in (client, sub):
            s.setsockopt(zmq.LINGER, 0)
        client.connect(cfg.registry_endpoint)
        client.send_multipart([b"", b"a request"])
        wait_until(lambda: server.router.get(zmq.EVENTS) & zmq.POLLIN, timeout=5,
                   what="the request queued")
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(cfg.events_endpoint)

        def taken() -> bool:
            server._serve_local(fds, 0.05)
            return bool(server._pub_topics)

        wait_until(taken, timeout=1.5, what="the subscription taken in a busy loop's turns")
        assert turns  # a turn at every call: the loop never waited
    finally:
        client.close()
        sub.close()
        server.close()


def test_a_peer_sending_the_pub_socket_more_than_a_subscription_is_dropped(
        server: RegistryServer) -> None:
    # The XPUB reads what peers send it: a message beyond a subscription's bound drops
    # its peer instead of being buffered in the registry.
    peer = server.context.socket(zmq.XSUB)
    peer.setsockopt(zmq.LINGER, 0)
    monitor = server.pub.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        peer.connect(server.cfg.events_endpoint)
        peer.send(b"\x01" + b"x" * (protocol.MAX_SUBSCRIPTION_BYTES + 1))
        assert monitor.poll(5000), "the peer was not dropped"
        assert zmq.utils.monitor.recv_monitor_message(monitor)["event"] == \
            zmq.EVENT_DISCONNECTED
    finally:
        server.pub.disable_monitor()
        monitor.close(linger=0)
        peer.close()
