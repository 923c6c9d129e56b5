"""The stream subscriber's reads (``registry/subscriber.py``, ``StreamEvents``) against
what the registry's side of its connection sends: a head announcing more than any event
is not buffered toward it (the connection is dropped, one warning, and made again), and a
deadline already passed still takes a message already come, as a SUB socket's does; a
mark of 0 subscribes as the registry takes it; a process out of descriptors is no error."""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors import protocol
from ecsm_actors.registry import subscriber as subscriber_module
from ecsm_actors.registry.stream import GREETING
from ecsm_actors.registry.subscriber import StreamEvents

pytestmark = pytest.mark.timeout(10)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[StreamEvents, socket.socket]]:
    """A subscriber (its endpoint's file absent: not connected by itself) given one end of
    a socket pair, and the registry's end."""
    sub = StreamEvents(f"unix://{tmp_path / 'none.stream'}", [b""], 10,
                       max_frame=64 << 10)
    assert sub.sock is None
    mine, registry = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    mine.setblocking(False)
    sub.sock = mine
    sub._fds.register(mine.fileno(), 1)  # select.POLLIN
    sub._retry_at = time.monotonic() + 60  # no connection attempt of its own meanwhile
    registry.sendall(GREETING)
    yield sub, registry
    sub.close()
    registry.close()


def test_a_frame_head_announcing_4_gib_drops_the_connection_instead_of_reading_it(
        pair: tuple[StreamEvents, socket.socket], caplog: pytest.LogCaptureFixture) -> None:
    sub, registry = pair
    registry.setblocking(False)
    registry.send(protocol.frame_head(0xFFFFFFF0) + b"\0" * 4096)
    with caplog.at_level(logging.WARNING):
        assert sub.next(time.monotonic() + 0.2) is None
    assert sub.sock is None and not sub._buf  # nothing kept toward it
    assert "a frame of 4294967280 bytes announced" in caplog.text
    with pytest.raises(OSError):  # the registry's end sees the connection go
        for _ in range(100):
            registry.send(b"\0" * 65536)


def test_a_frame_in_pieces_comes_whole_and_in_order(
        pair: tuple[StreamEvents, socket.socket]) -> None:
    sub, registry = pair
    first = protocol.frame_event(b"ECSMService.ADDED", b"a" * 40_000)
    second = protocol.frame_event(b"HEARTBEAT", b"b")
    data = first + second
    for at in range(0, len(data), 7_000):
        registry.sendall(data[at:at + 7_000])
        got = sub.next(time.monotonic() + 0.05)
        if got is not None:
            break
    assert got == [b"ECSMService.ADDED", b"a" * 40_000]
    assert sub.next(time.monotonic() + 1) == [b"HEARTBEAT", b"b"]


def test_a_deadline_already_passed_still_takes_a_message_already_come(
        pair: tuple[StreamEvents, socket.socket]) -> None:
    sub, registry = pair
    registry.sendall(protocol.frame_event(b"HEARTBEAT", b"hb"))
    assert sub.next(time.monotonic()) == [b"HEARTBEAT", b"hb"]
    assert sub.next(time.monotonic()) is None  # nothing more: at once


@pytest.mark.parametrize("hwm", [0, -1])
def test_a_subscriber_without_a_mark_of_its_own_sends_a_subscription_the_registry_takes(
        tmp_path: Path, hwm: int) -> None:
    # registry.pub_hwm 0 (ZeroMQ's RCVHWM 0: no limit) is what the informers subscribe
    # with then: a subscription refused would be closed and sent again every 0.1 s.
    sub = StreamEvents(f"unix://{tmp_path / 'none.stream'}", [b""], hwm)
    frame = sub._subscription[protocol.FRAME_HEAD_BYTES:]
    topics, mark = protocol.decode_subscription(frame)
    assert topics == (b"",) and mark >= 1 << 20


def test_a_process_out_of_descriptors_gets_no_event_yet_not_an_oserror(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_descriptors(*args: object, **kwargs: object) -> socket.socket:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(subscriber_module.socket, "socket", out_of_descriptors)
    sub = StreamEvents(f"unix://{tmp_path / 'events.stream'}", [b""], 10)
    sub._retry_at = 0.0  # the next wait tries again at once
    assert sub.next(time.monotonic() + 0.05) is None and sub.sock is None
