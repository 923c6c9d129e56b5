"""The link emulator does what the ground-link tests rely on: a round trip costs two
one-way delays (and a new connection the TCP handshake before it), the bandwidth cap
holds, resets reach both sides, and a blackout holds bytes on an open connection, then
delivers them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import wait_until
from tests.link_emulator import LinkEmulator

pytestmark = pytest.mark.timeout(60)


class Target:
    """A 127.0.0.1 server in a thread: echoes what it receives, or (``send`` given)
    sends that many bytes to each client; records how each connection ended."""

    def __init__(self, send: int = 0) -> None:
        self.send = send
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.endings: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                if self.send:
                    conn.sendall(b"x" * self.send)
                while data := conn.recv(65536):
                    conn.sendall(data)
                self.endings.append("closed")
        except ConnectionResetError:
            self.endings.append("reset")
        except OSError:
            self.endings.append("error")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


def connect(link: LinkEmulator) -> socket.socket:
    return socket.create_connection(("127.0.0.1", link.port), timeout=10)


def echo_time(sock: socket.socket, payload: bytes = b"ping") -> float:
    start = time.monotonic()
    sock.sendall(payload)
    got = b""
    while len(got) < len(payload):
        got += sock.recv(65536)
    return time.monotonic() - start


def test_a_round_trip_costs_two_delays_and_a_new_connection_the_handshake_first(
        target: Target, tmp_path: Path) -> None:
    with LinkEmulator([target.port], delay=0.1, log_dir=tmp_path) as link, \
            connect(link) as sock:
        first = echo_time(sock)
        rtts = [echo_time(sock) for _ in range(3)]
    assert 0.38 <= first <= 0.6, first  # 1 RTT handshake + 1 RTT
    assert all(0.19 <= rtt <= 0.3 for rtt in rtts), rtts


def test_the_bandwidth_cap_holds_in_each_direction(tmp_path: Path) -> None:
    source = Target(send=100_000)
    try:
        with LinkEmulator([source.port], bandwidth=200_000, log_dir=tmp_path) as link, \
                connect(link) as sock:
            start, got = time.monotonic(), 0
            while got < 100_000:
                got += len(sock.recv(65536))
            elapsed = time.monotonic() - start
    finally:
        source.close()
    assert 0.45 <= elapsed <= 1.0, f"100 kB at 200 kB/s took {elapsed:.2f}s"


def test_random_resets_reach_both_sides(target: Target, tmp_path: Path) -> None:
    with LinkEmulator([target.port], reset_every=0.3, log_dir=tmp_path) as link, \
            connect(link) as sock:
        echo_time(sock)

        sock.settimeout(0.1)

        def reset_seen() -> bool:
            try:
                data = sock.recv(1)
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True
            raise AssertionError(f"expected a reset, got {data!r}")

        wait_until(reset_seen, timeout=10, what="the client to see its connection reset")
        wait_until(lambda: "reset" in target.endings, timeout=5,
                   what="the target to see the connection reset")
        assert link.stats()["resets"] >= 1


def test_periodic_stalls_hold_bytes_without_closing_the_connection(
        target: Target, tmp_path: Path) -> None:
    with LinkEmulator([target.port], stall_every=0.8, stall_for=0.4,
                      log_dir=tmp_path) as link, connect(link) as sock:
        start, times = time.monotonic(), []
        while time.monotonic() - start < 1.8:
            times.append(echo_time(sock))
        stats = link.stats()
    assert max(times) >= 0.2, "no echo was held by a stall"
    assert stats["stalls"] >= 2 and stats["resets"] == 0 and stats["accepted"] == 1


def test_a_blackout_holds_bytes_on_an_open_connection_then_delivers_them(
        target: Target, tmp_path: Path) -> None:
    with LinkEmulator([target.port], delay=0.02, log_dir=tmp_path) as link, \
            connect(link) as sock:
        echo_time(sock)
        link.blackout()
        sock.sendall(b"held")
        sock.settimeout(0.6)
        with pytest.raises(TimeoutError):
            sock.recv(16)
        link.restore()
        sock.settimeout(5)
        assert sock.recv(16) == b"held"
        stats = link.stats()
    assert stats["resets"] == 0 and stats["accepted"] == 1


def test_a_blackout_with_reset_cuts_every_connection(target: Target, tmp_path: Path) -> None:
    with LinkEmulator([target.port], log_dir=tmp_path) as link, connect(link) as sock:
        echo_time(sock)
        link.blackout(reset=True)
        sock.settimeout(5)
        with pytest.raises(ConnectionResetError):
            sock.recv(16)
        with connect(link) as again, pytest.raises(ConnectionResetError):
            again.settimeout(5)
            again.sendall(b"x")
            again.recv(16)
        link.restore()
        with connect(link) as fresh:
            assert echo_time(fresh) < 1
