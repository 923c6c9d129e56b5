"""The stream client out of descriptors: the attempt is one not sent (nothing can have
reached the registry), never an ``OSError`` out of its exchange."""

from __future__ import annotations

import errno
import socket
import time
from typing import Any

import pytest

from ecsm_actors import protocol
from ecsm_actors.protocol import Op
from ecsm_actors.registry import stream_socket
from ecsm_actors.registry.stream_socket import StreamRequestSocket


def test_a_process_out_of_descriptors_gets_an_attempt_not_sent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def no_descriptor(*args: Any, **kwargs: Any) -> socket.socket:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(stream_socket.socket, "socket", no_descriptor)
    sock = StreamRequestSocket("unix:///nonexistent/registry.stream")
    now = time.monotonic()
    attempt = sock.exchange(protocol.encode_request(Op.PING, 1), rto=0.01, until=now + 0.05)
    assert attempt.sent_at is None and attempt.reply is None and not attempt.lost
