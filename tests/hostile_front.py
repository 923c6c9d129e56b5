"""A hostile HTTP front for the ECSM simulator: a small proxy on 127.0.0.1 that forwards
each request to the simulator and, when switched to a mode, lies the way a buggy platform
or a bad middlebox would. For fault tests: the controller under test is pointed at the
front (``ECSM_ACTORS_ECSM_HOST``/``PORT``), the test reads the simulator directly.

Modes (:attr:`HostileFront.mode`, switched at any time by the test):

* ``honest``          — forwards everything unchanged;
* ``repeat_pages``    — paged lists ignore ``pageNum`` (page 1 every time) and report a
  ``total`` that counts rows the first page never shows;
* ``phantom``         — service lists carry, for every row ever listed, a phantom row with
  another id and an older ``createdTime`` (still listed after the real one is gone);
  a GET or DELETE of a phantom id reaches the simulator, which does not know it;
* ``empty503``        — every request: HTTP 503 with an empty body;
* ``null_list``       — paged lists: HTTP 200 ``{"status":200,"data":null}``;
* ``deep_json``       — every request: HTTP 200 with ``data`` nested 100,000 deep;
* ``bad_status_line`` — every request: a status line whose code is not ASCII digits.

Every request is recorded as ``(mode, method, path)`` so the test can count, e.g., the
DELETEs that reached a live service. Runs in the test process (threads); one upstream
connection per request.
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

MODES = ("honest", "repeat_pages", "phantom", "empty503", "null_list", "deep_json",
         "bad_status_line")

_NULL_DATA = b'{"status":200,"message":"success","data":null,"fieldErrors":null}'
_DEEP = b'{"status":200,"message":"success","data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


class HostileFront:
    """The proxy; ``url`` is what the controller talks to. Close it at teardown."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = "honest"
        self.requests: list[tuple[str, str, str]] = []
        self.phantoms: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        front = self

        class Handler(_Handler):
            owner = front

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def count(self, method: str | None = None, path: str = "", mode: str | None = None) -> int:
        """Requests seen so far, filtered by method, path prefix and the mode they met."""
        with self._lock:
            return sum(1 for m, verb, p in self.requests
                       if (mode is None or m == mode) and (method is None or verb == method)
                       and p.startswith(path))

    def paths(self, method: str) -> list[str]:
        with self._lock:
            return [p for _, verb, p in self.requests if verb == method]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # -- what each mode answers ---------------------------------------------------------------

    def answer(self, method: str, target: str, body: bytes) -> tuple[int, bytes] | bytes:
        """(HTTP status, body) to send, or a whole raw reply."""
        mode = self.mode
        parts = urlsplit(target)
        with self._lock:
            self.requests.append((mode, method, parts.path))
        is_list = method == "GET" and "pageNum=" in parts.query
        if mode == "empty503":
            return 503, b""
        if mode == "deep_json":
            return 200, _DEEP
        if mode == "bad_status_line":
            return (b"HTTP/1.1 \xb2\xb2\xb2 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(_NULL_DATA), _NULL_DATA))
        if mode == "null_list" and is_list:
            return 200, _NULL_DATA
        if mode == "repeat_pages" and is_list:
            query = [(k, "1" if k == "pageNum" else v) for k, v in parse_qsl(parts.query)]
            status, reply = self.forward(method, parts._replace(query=urlencode(query))
                                         .geturl(), body)
            doc = json.loads(reply)
            if status == 200 and isinstance(doc.get("data"), dict) and doc["data"]["list"]:
                doc["data"]["total"] = 2 * len(doc["data"]["list"])
            return status, json.dumps(doc).encode()
        status, reply = self.forward(method, target, body)
        if mode == "phantom" and is_list and parts.path == "/api/v1/service" and status == 200:
            return status, self._with_phantoms(reply, dict(parse_qsl(parts.query)))
        return status, reply

    def _with_phantoms(self, reply: bytes, query: dict[str, str]) -> bytes:
        doc = json.loads(reply)
        page = doc["data"]
        with self._lock:
            for row in page["list"]:
                self.phantoms.setdefault(row["name"], {
                    **row, "id": "0" * 8 + row["id"][8:], "createdTime": "2000-01-01 00:00:00"})
            phantoms = [row for name, row in self.phantoms.items()
                        if query.get("name", "") in name]
        page["list"] = phantoms + page["list"]
        page["total"] += len(phantoms)
        return json.dumps(doc).encode()

    def forward(self, method: str, target: str, body: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=10)
        try:
            conn.request(method, target, body=body or None,
                         headers={"Content-Type": "application/json",
                                  "Accept": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    owner: HostileFront
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = self.owner.answer(self.command, self.path, body)
        except (OSError, http.client.HTTPException):
            self.close_connection = True  # the simulator is gone: hang up like it would
            return
        if isinstance(answer, bytes):
            self.wfile.write(answer)
            self.close_connection = True
            return
        status, reply = answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = do_DELETE = _proxy
