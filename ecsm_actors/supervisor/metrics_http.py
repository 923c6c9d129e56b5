"""``GET /metrics`` over HTTP from the supervisor process (``supervisor.metrics_endpoint``).

Runs in the supervisor process, and only when the setting is non-empty (the loop imports
this module then, so an operator without it never loads ``prometheus_client``). One
daemon thread serves HTTP/1.0, one request at a time (a scraper every few seconds, not a
crowd); the supervisor's state stays owned by its event loop: the thread asks for a
snapshot by writing a byte to a pipe the loop polls (:attr:`MetricsServer.fd`), the loop
answers with :meth:`MetricsServer.answer` (the ``stats`` and ``status`` maps it gives the
control socket), and the thread renders them (:mod:`.metrics`) without touching the tree.
A loop that does not answer within :data:`SNAPSHOT_TIMEOUT` gets the scrape a 503.

The address must be a loopback one (``127.0.0.1:9464``, ``[::1]:9464``, ``localhost``)
unless ``supervisor.metrics_allow_remote`` is set: :func:`parse_endpoint` refuses it with
a ConfigError at the supervisor's start, as it refuses a port already taken.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

from ecsm_actors.config import is_loopback
from ecsm_actors.errors import ConfigError
from ecsm_actors.supervisor import metrics

logger = logging.getLogger(__name__)

#: Longest wait of a scrape for the event loop's snapshot, seconds.
SNAPSHOT_TIMEOUT = 5.0


def parse_endpoint(endpoint: str, *, allow_remote: bool) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); ConfigError when malformed or not allowed."""
    host, sep, port_text = endpoint.removeprefix("http://").rstrip("/").rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"supervisor.metrics_endpoint {endpoint!r}: expected HOST:PORT, "
                          f"e.g. 127.0.0.1:9464")
    if not allow_remote and not is_loopback(f"tcp://{host}:{port_text}"):
        raise ConfigError(f"supervisor.metrics_endpoint {endpoint!r} is not a loopback "
                          f"address: set supervisor.metrics_allow_remote = true to serve "
                          f"metrics beyond this computer")
    return host, int(port_text)


class MetricsServer:
    """The listening socket, its thread and the snapshot handshake (module docstring)."""

    def __init__(self, endpoint: str, *, allow_remote: bool = False) -> None:
        host, port = parse_endpoint(endpoint, allow_remote=allow_remote)
        server_class = _Server6 if ":" in host else _Server
        try:
            self._http = server_class((host, port), _Handler)
        except OSError as e:
            raise ConfigError(f"supervisor.metrics_endpoint {endpoint!r}: cannot listen: "
                              f"{e.strerror or e}") from e
        self._http.owner = self
        self.address: tuple[str, int] = self._http.server_address[:2]  # type: ignore[assignment]
        self.fd, self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._lock = threading.Lock()
        self._waiting: list[_Request] = []
        self._thread = threading.Thread(target=self._http.serve_forever, name="metrics-http",
                                        daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        logger.info("serving /metrics on http://%s:%d", *self.address)
        return self

    def answer(self, stats: dict[str, Any], status: dict[str, Any]) -> None:
        """Called by the loop when :attr:`fd` is readable: hand the snapshot to every
        scrape waiting for one."""
        try:
            while os.read(self.fd, 64):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            waiting, self._waiting = self._waiting, []
        for request in waiting:
            request.snapshot = (stats, status)
            request.done.set()

    def snapshot(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """From the HTTP thread: the loop's snapshot, or None when it did not answer."""
        request = _Request()
        with self._lock:
            self._waiting.append(request)
        try:
            os.write(self._wake, b"m")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already: the loop will come
        request.done.wait(SNAPSHOT_TIMEOUT)
        return request.snapshot

    def close(self) -> None:
        if self._thread.is_alive():
            self._http.shutdown()
        self._http.server_close()
        os.close(self.fd)
        os.close(self._wake)


class _Request:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.snapshot: tuple[dict[str, Any], dict[str, Any]] | None = None


class _Server(HTTPServer):
    owner: MetricsServer
    timeout = 10.0

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(self.server_address)
        self.server_address = self.socket.getsockname()


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10.0  # a client that connects and says nothing does not hold the thread

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.split("?")[0] not in ("/metrics", "/metrics/"):
            self._reply(404, b"not found: try /metrics\n", "text/plain; charset=utf-8")
            return
        snapshot = self.server.owner.snapshot()
        if snapshot is None:
            self._reply(503, b"the supervisor did not answer in time\n",
                        "text/plain; charset=utf-8")
            return
        self._reply(200, metrics.render(*snapshot), metrics.CONTENT_TYPE_LATEST)

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        logger.debug("metrics http: " + format, *args)
