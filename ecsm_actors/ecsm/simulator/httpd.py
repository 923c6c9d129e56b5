"""The simulator's HTTP front: a ThreadingHTTPServer speaking HTTP/1.1 with keep-alive.

Runs inside the simulator process; one daemon thread per client connection. The handler
only reads the request, hands it to :class:`~.app.Simulator` and writes the reply in a
single ``write`` (no per-request INFO logging: the hot path stays small). A dropped
request closes the connection without writing anything.
"""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ecsm_actors.ecsm.simulator.app import Simulator

logger = logging.getLogger(__name__)

_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found", 500: b"Internal Server Error"}


class SimServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: Simulator) -> None:
        self.app = app
        super().__init__(address, SimHandler)


class SimHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: An idle keep-alive connection is closed after this long (no leaked threads).
    timeout = 300
    server: SimServer

    def _serve(self) -> None:
        length = self.headers.get("Content-Length")
        try:
            body = self.rfile.read(int(length)) if length else b""
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return
        reply = self.server.app.handle(self.command, self.path, body)
        if reply is None:
            self.close_connection = True
            return
        status, payload = reply
        head = (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n" % (status, _REASONS.get(status, b"Error"),
                                             len(payload)))
        if self.close_connection:
            head += b"Connection: close\r\n"
        self.wfile.write(head + b"\r\n" + payload)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s", self.address_string(), format % args)
