"""The lean ECSM transport: HTTP/1.1 with keep-alive over plain sockets, for ``http://`` URLs.

Runs in every process that talks to ECSM over plain HTTP (the controllers above all). It
exists for the controllers' footprint: ``requests`` pulls in urllib3, ssl, http.client,
email, idna and charset_normalizer — about 13 MiB of resident memory and 60–70 ms of start
time per process — for what is, on ECSM's local network, one JSON request and one reply.
``https://`` URLs keep the ``requests`` transport (see
:func:`ecsm_actors.ecsm.rest.default_transport`).

Invariants (the :class:`~ecsm_actors.ecsm.rest.Transport` contract):

* Sends exactly the headers ``requests`` sends with the rest layer's session: ``Host``, the
  JSON ``Content-Type``/``Accept`` pair, ``Content-Length`` when there is a body (``0`` for
  a body-less non-GET, like ``requests``). No proxies, no redirects followed.
* Reads a reply framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of
  the connection; skips interim ``1xx`` replies; refuses a head or body above its limits.
* Connections are pooled (thread-safe: a connection serves one call at a time). An idle
  connection is checked before reuse (one the server closed is discarded, as urllib3
  does); any failure discards the connection. Never retries.
* Transport failures raise :class:`~ecsm_actors.errors.EcsmUnavailable` naming the URL with
  the same causes as the ``requests`` transport: ``connection refused``, ``timeout
  (connect timed out|read timed out)``, ``connection reset``, ``connection closed without
  response``; a reply that is not HTTP raises :class:`~ecsm_actors.errors.EcsmDecodeError`.
"""

from __future__ import annotations

import re
import select
import socket
import threading
from io import BufferedReader
from urllib.parse import urlsplit

from ecsm_actors.errors import EcsmDecodeError, EcsmUnavailable

#: Longest status or header line, and most header lines, of a reply.
MAX_LINE = 64 << 10
MAX_HEADERS = 100
#: Largest reply body accepted (ECSM pages are small; this only stops a runaway reply).
MAX_BODY = 256 << 20
#: Idle connections kept for reuse (one per concurrent caller: a controller's workers).
MAX_IDLE = 8

_HEADERS = b"Content-Type: application/json\r\nAccept: application/json\r\n"


class _Closed(Exception):
    """Internal: the server closed the connection before a complete reply."""


class _Connection:
    """One keep-alive TCP connection to ``(host, port)``."""

    def __init__(self, address: tuple[bytes, int], connect_timeout: float | None) -> None:
        self.address = address
        self.sock = _connect(address, connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def dropped(self) -> bool:
        """True when the peer closed an idle connection (or sent something unasked)."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        try:
            return bool(poller.poll(0))
        except OSError:
            return True

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class PlainHttpTransport:
    """:class:`~ecsm_actors.ecsm.rest.Transport` over plain HTTP/1.1 (see module doc)."""

    def __init__(self, *, max_body: int = MAX_BODY) -> None:
        self.max_body = max_body
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def send(self, method: str, url: str, body: bytes | None,
             timeout: tuple[float | None, float | None]) -> tuple[int, bytes]:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the plain HTTP transport cannot send to {url!r}")
        address = (_host(parts.hostname), parts.port or 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        host = parts.netloc.rpartition("@")[2]
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n".encode("latin-1") + _HEADERS
        if body is not None or method not in ("GET", "HEAD"):
            head += b"Content-Length: %d\r\n" % len(body or b"")
        request = head + b"\r\n" + (body or b"")
        connect_timeout, read_timeout = timeout
        conn = self._acquire(address, connect_timeout, url)
        try:
            conn.sock.settimeout(read_timeout)
            conn.sock.sendall(request)
            status, reply, reusable = self._read_reply(conn, method)
        except TimeoutError as e:
            conn.close()
            raise EcsmUnavailable(url, "timeout (read timed out)") from e
        except _Closed as e:
            conn.close()
            raise EcsmUnavailable(url, str(e)) from e
        except ConnectionResetError as e:
            conn.close()
            raise EcsmUnavailable(url, "connection reset") from e
        except OSError as e:
            conn.close()
            raise EcsmUnavailable(url, f"connection aborted ({e.strerror or e})") from e
        except BaseException:
            conn.close()
            raise
        if reusable:
            self._release(conn)
        else:
            conn.close()
        return status, reply

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # -- connections ---------------------------------------------------------------------

    def _acquire(self, address: tuple[bytes, int], connect_timeout: float | None,
                 url: str) -> _Connection:
        while True:
            with self._lock:
                conn = next((c for c in reversed(self._idle) if c.address == address), None)
                if conn is not None:
                    self._idle.remove(conn)
            if conn is None:
                break
            if not conn.dropped():
                return conn
            conn.close()
        try:
            return _Connection(address, connect_timeout)
        except TimeoutError as e:
            raise EcsmUnavailable(url, "timeout (connect timed out)") from e
        except ConnectionRefusedError as e:
            raise EcsmUnavailable(url, "connection refused") from e
        except OSError as e:
            raise EcsmUnavailable(url, f"cannot connect ({e.strerror or e})") from e

    def _release(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    # -- replies -------------------------------------------------------------------------

    def _read_reply(self, conn: _Connection, method: str) -> tuple[int, bytes, bool]:
        """(status, body, whether the connection can be reused)."""
        reader = conn.reader
        while True:
            line = reader.readline(MAX_LINE + 1)
            if not line:
                raise _Closed("connection closed without response")
            version, status = _status_line(line)
            headers = _headers(reader)
            if not 100 <= status < 200 or status == 101:
                break  # interim 1xx replies (e.g. 100 Continue) carry no body
        keep_alive = _keeps_alive(version, headers.get("connection", ""))
        if method == "HEAD" or status in (204, 304):
            return status, b"", keep_alive
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return status, self._chunked(reader), keep_alive
        length = headers.get("content-length")
        if length is not None:
            if not _DIGITS.fullmatch(length.encode("latin-1")):
                raise EcsmDecodeError(f"bad Content-Length {length[:40]!r}",
                                      cause="a bad Content-Length")
            size = int(length)
            if size > self.max_body:
                raise EcsmDecodeError(f"reply body of {size} bytes refused "
                                      f"(limit {self.max_body})")
            data = reader.read(size)
            if len(data) != size:
                raise _Closed("connection closed in the middle of the response")
            return status, data, keep_alive
        data = reader.read(self.max_body + 1)  # framed by the end of the connection
        if len(data) > self.max_body:
            raise EcsmDecodeError(f"reply body above the limit of {self.max_body} bytes")
        return status, data, False

    def _chunked(self, reader: BufferedReader) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            line = reader.readline(MAX_LINE + 1)
            if not line:
                raise _Closed("connection closed in the middle of the response")
            digits = line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(digits):
                raise EcsmDecodeError(f"bad chunk size line {line[:40]!r}",
                                      cause="a bad chunk size")
            size = int(digits, 16)
            if size == 0:
                _headers(reader)  # trailers
                return b"".join(parts)
            total += size
            if total > self.max_body:
                raise EcsmDecodeError(f"reply body above the limit of {self.max_body} bytes")
            data = reader.read(size + 2)
            if len(data) != size + 2:
                raise _Closed("connection closed in the middle of the response")
            parts.append(data[:size])


def _connect(address: tuple[bytes, int], timeout: float | None) -> socket.socket:
    """``socket.create_connection`` for a bytes host: each address in turn, the last
    error raised when none accepts."""
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(*address, 0,
                                                               socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as e:
            sock.close()
            error = e
    raise error or OSError(f"no address for {address[0]!r}")


def _host(hostname: str) -> bytes:
    """The host as bytes: a ``str`` host makes getaddrinfo import the idna codec,
    stringprep and unicodedata (about 1 MiB resident) even for ``127.0.0.1``."""
    try:
        return hostname.encode("ascii")
    except UnicodeEncodeError:
        return hostname.encode("idna")


_STATUS_LINE = re.compile(rb"(HTTP/1\.[0-9]) ([0-9]{3})(?:[ \t][^\r\n]*)?\r?\n?")
_DIGITS = re.compile(rb"[0-9]{1,18}")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,15}")


def _status_line(line: bytes) -> tuple[str, int]:
    """``HTTP/1.x NNN reason``, in ASCII: anything else (a non-ASCII or non-decimal code,
    which ``int()`` would mis-read or choke on) is not an HTTP reply."""
    if len(line) > MAX_LINE:
        raise EcsmDecodeError("reply status line too long", cause="not an HTTP reply")
    match = _STATUS_LINE.fullmatch(line)
    if match is None:
        raise EcsmDecodeError(f"not an HTTP reply: {line[:80]!r}", cause="not an HTTP reply")
    return match.group(1).decode("ascii"), int(match.group(2))


def _headers(reader: BufferedReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = reader.readline(MAX_LINE + 1)
        if not line:
            raise _Closed("connection closed in the middle of the response")
        if len(line) > MAX_LINE:
            raise EcsmDecodeError("reply header line too long")
        if line in (b"\r\n", b"\n"):
            return headers
        name, sep, value = line.decode("latin-1").partition(":")
        if sep:
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
    raise EcsmDecodeError(f"reply with more than {MAX_HEADERS} header lines")


def _keeps_alive(version: str, connection: str) -> bool:
    tokens = {t.strip().lower() for t in connection.split(",")}
    if "close" in tokens:
        return False
    return version != "HTTP/1.0" or "keep-alive" in tokens
