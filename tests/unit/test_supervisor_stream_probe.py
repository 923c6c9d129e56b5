"""The supervisor on the registry's local stream endpoint: its readiness probe pings the
registry there when it is served (every local process talks to it: a stream listener that
does not greet or answer is a registry not ready), and its event sender sends there, on
the stream client's socket. Against a stand-in registry on a socket file in tmp_path."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors import protocol
from ecsm_actors.config import load_config
from ecsm_actors.errors import Unavailable
from ecsm_actors.registry.stream import GREETING
from ecsm_actors.supervisor import probes
from ecsm_actors.supervisor.children import REGISTRY, builtin_children
from ecsm_actors.supervisor.event_sender import EventSender, sender_factory
from ecsm_actors.supervisor.spec import Readiness, ReadinessKind

pytestmark = pytest.mark.timeout(30)


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


class StandIn:
    """A registry's stream endpoint in a thread: greets each connection, then answers
    each request with ``answer(request)``; ``greet=False``: accepts nothing (a listener
    whose loop is stuck)."""

    def __init__(self, path: Path, answer: Callable[[dict[str, Any]], Any], *,
                 greet: bool = True) -> None:
        self.endpoint = f"unix://{path}"
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(path))
        self.listener.listen(8)
        self.thread = threading.Thread(target=self._serve, daemon=True) if greet else None
        if self.thread is not None:
            self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.sendall(GREETING)
                try:
                    while True:
                        size = protocol.frame_size(recv_exactly(conn, 4))[0]
                        request = protocol.unpack(recv_exactly(conn, size))
                        self.requests.append(request)
                        reply = protocol.encode_reply(request["id"], "e", self.answer(request))
                        conn.sendall(protocol.frame_head(len(reply)) + reply)
                except (EOFError, OSError):
                    pass

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        if self.thread is not None:
            self.thread.join(5)


@pytest.fixture
def stand_ins(tmp_path: Path) -> Iterator[Callable[..., StandIn]]:
    made: list[StandIn] = []

    def make(answer: Callable[[dict[str, Any]], Any], *, greet: bool = True) -> StandIn:
        made.append(StandIn(tmp_path / f"r{len(made)}.stream", answer, greet=greet))
        return made[-1]

    yield make
    for stand_in in made:
        stand_in.close()


def ping_check(endpoint: str) -> probes.Check:
    return probes._CHECKS[ReadinessKind.REGISTRY_PING](
        "registry", Readiness(kind=ReadinessKind.REGISTRY_PING, endpoint=endpoint))


def test_the_registry_s_probe_pings_through_its_stream_endpoint_when_served(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECSM_ACTORS_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("ECSM_ACTORS_CONF", "")
    cfg = load_config()
    registry = next(c for c in builtin_children(cfg, simulate=False) if c.name == REGISTRY)
    assert registry.readiness.endpoint == f"unix://{tmp_path}/registry.stream"
    monkeypatch.setenv("ECSM_ACTORS_REGISTRY_STREAM_ENDPOINT", "off")
    cfg = load_config()
    registry = next(c for c in builtin_children(cfg, simulate=False) if c.name == REGISTRY)
    assert registry.readiness.endpoint == cfg.registry_endpoint


def test_a_stream_answering_ping_with_the_child_s_pid_is_ready(
        stand_ins: Callable[..., StandIn]) -> None:
    registry = stand_ins(lambda request: {"pid": 4242})
    check = ping_check(registry.endpoint)
    assert check(4242) == probes.ProbeResult(name="registry", pid=4242)
    assert check(77) is None  # another process answers there: not our child yet
    assert [r["op"] for r in registry.requests] == [protocol.Op.PING, protocol.Op.PING]


def test_a_stream_listener_that_does_not_greet_is_not_ready(
        stand_ins: Callable[..., StandIn], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(probes, "PING_TIMEOUT", 0.05)
    stuck = stand_ins(lambda request: {}, greet=False)
    started = time.monotonic()
    assert ping_check(stuck.endpoint)(os.getpid()) is None
    assert time.monotonic() - started < 2
    assert ping_check(f"unix://{tmp_path}/none.stream")(os.getpid()) is None  # no file


def test_the_event_sender_sends_on_the_local_stream_endpoint(
        stand_ins: Callable[..., StandIn], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECSM_ACTORS_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("ECSM_ACTORS_CONF", "")
    cfg = load_config()
    assert sender_factory(cfg)().endpoint == cfg.registry_local_endpoint
    registry = stand_ins(lambda request: {"recorded": len(request["events"])})
    sender = EventSender(registry.endpoint, 2.0)
    try:
        assert sender.record_events([{"reason": "Killed"}, {"reason": "Started"}]) == 2
        assert sender.record_events([{"reason": "Exited"}]) == 1
        assert [r["op"] for r in registry.requests] == [protocol.Op.RECORD_EVENTS] * 2
    finally:
        sender.close()


def test_the_event_sender_gives_up_on_a_stream_that_does_not_answer(
        stand_ins: Callable[..., StandIn]) -> None:
    stuck = stand_ins(lambda request: {}, greet=False)
    sender = EventSender(stuck.endpoint, 0.05)
    with pytest.raises(Unavailable, match="no answer within 0.05s"):
        sender.record_events([{"reason": "Killed"}])
    sender.close()
