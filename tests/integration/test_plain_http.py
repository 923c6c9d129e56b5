"""The lean plain-HTTP transport against a scripted server on 127.0.0.1: the request it
sends, every reply framing (length, chunked, end of connection), keep-alive reuse, a
connection the server closed while idle, and each transport failure as EcsmUnavailable."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from ecsm_actors.ecsm.plainhttp import PlainHttpTransport
from ecsm_actors.ecsm.rest import RequestsTransport, default_transport
from ecsm_actors.errors import EcsmDecodeError, EcsmUnavailable

TIMEOUT = (2.0, 2.0)
#: request (head + body) → (raw reply, then close the connection?); None: close at once
Reply = Callable[[bytes], tuple[bytes, bool] | None]


class ScriptedServer:
    """Accepts connections; answers each request with the next scripted reply."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.connections = 0
        self.hung_up = threading.Event()  # a connection ended on the server's side
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self._answer(conn)
        finally:
            self.hung_up.set()

    def _answer(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while self.replies:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = reader.readline()
                    if not line:
                        return
                    head += line
                length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length:")), 0)
                request = head + reader.read(length)
                self.requests.append(request)
                answer = self.replies.pop(0)(request)
                if answer is None:
                    return
                conn.sendall(answer[0])
                if answer[1]:
                    return

    def close(self) -> None:
        self.listener.close()


def reply(raw: bytes, close: bool = False) -> Reply:
    return lambda _request: (raw, close)


def hang_up(_request: bytes) -> None:
    return None


def json_reply(body: bytes = b'{"status":200}', extra: bytes = b"") -> Reply:
    return reply(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))


@pytest.fixture
def transport() -> Iterator[PlainHttpTransport]:
    t = PlainHttpTransport()
    yield t
    t.close()


def serve(*replies: Reply) -> ScriptedServer:
    return ScriptedServer(*replies)


def test_http_urls_get_the_plain_transport_and_https_keeps_requests() -> None:
    plain = default_transport("http://ecsm:3001")
    secure = default_transport("https://ecsm:3001")
    assert isinstance(plain, PlainHttpTransport) and isinstance(secure, RequestsTransport)
    plain.close()
    secure.close()


def test_it_sends_the_json_headers_and_a_length_and_reuses_the_connection(
        transport: PlainHttpTransport) -> None:
    server = serve(json_reply(), json_reply(b'{"status":200,"data":1}'), json_reply())
    assert transport.send("POST", f"{server.url}/api/v1/service?a=1", b'{"x":1}', TIMEOUT) == \
        (200, b'{"status":200}')
    assert transport.send("GET", f"{server.url}/api/v1/service", None, TIMEOUT)[1] == \
        b'{"status":200,"data":1}'
    transport.send("PUT", f"{server.url}/api/v1/container", None, TIMEOUT)
    post, get, put = server.requests
    assert post.startswith(b"POST /api/v1/service?a=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n".encode() in post
    assert b"Content-Type: application/json\r\nAccept: application/json\r\n" in post
    assert post.endswith(b"Content-Length: 7\r\n\r\n{\"x\":1}")
    assert b"Content-Length" not in get and b"Content-Length: 0\r\n" in put
    assert server.connections == 1
    server.close()


def test_chunked_and_connection_delimited_bodies_are_read_whole(
        transport: PlainHttpTransport) -> None:
    chunked = (b"HTTP/1.1 100 Continue\r\n\r\n"
               b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;ext=1\r\nabcd\r\n3\r\nefg\r\n0\r\nX-Trailer: t\r\n\r\n")
    server = serve(reply(chunked),
                   reply(b"HTTP/1.0 200 OK\r\n\r\nuntil the end", close=True), json_reply())
    assert transport.send("GET", f"{server.url}/a", None, TIMEOUT) == (200, b"abcdefg")
    assert transport.send("GET", f"{server.url}/b", None, TIMEOUT) == (200, b"until the end")
    transport.send("GET", f"{server.url}/c", None, TIMEOUT)
    assert server.connections == 2  # a connection-delimited reply ends the connection
    server.close()


def test_a_connection_the_server_closed_is_not_reused(transport: PlainHttpTransport) -> None:
    server = serve(json_reply(extra=b"Connection: close\r\n"), json_reply())
    transport.send("GET", f"{server.url}/a", None, TIMEOUT)
    transport.send("GET", f"{server.url}/b", None, TIMEOUT)
    assert server.connections == 2
    server.close()
    # kept alive, then closed by the server while idle (its keep-alive timeout)
    server = serve(lambda _r: (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", True),
                   json_reply())
    transport.send("GET", f"{server.url}/a", None, TIMEOUT)
    assert server.hung_up.wait(2.0)
    assert transport.send("GET", f"{server.url}/b", None, TIMEOUT)[1] == b'{"status":200}'
    assert server.connections == 2
    server.close()


def test_transport_failures_are_unavailable_with_their_cause(
        transport: PlainHttpTransport) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        closed = s.getsockname()[1]
    with pytest.raises(EcsmUnavailable, match="connection refused") as e:
        transport.send("GET", f"http://127.0.0.1:{closed}/x", None, TIMEOUT)
    assert f"127.0.0.1:{closed}/x" in str(e.value)

    server = serve(hang_up, reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
                                  close=True))
    with pytest.raises(EcsmUnavailable, match="connection closed without response"):
        transport.send("GET", f"{server.url}/dropped", None, TIMEOUT)
    with pytest.raises(EcsmUnavailable, match="in the middle of the response"):
        transport.send("GET", f"{server.url}/short", None, TIMEOUT)

    silent = serve(reply(b""), reply(b""))  # answers nothing, keeps the connection open
    with pytest.raises(EcsmUnavailable, match=r"timeout \(read timed out\)"):
        transport.send("GET", f"{silent.url}/slow", None, (2.0, 0.2))
    server.close()
    silent.close()


def test_a_reply_that_is_not_http_or_too_big_is_a_decode_error() -> None:
    server = serve(reply(b"SSH-2.0-OpenSSH\r\n"),
                   reply(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100))
    small = PlainHttpTransport(max_body=10)
    with pytest.raises(EcsmDecodeError, match="not an HTTP reply"):
        small.send("GET", f"{server.url}/a", None, TIMEOUT)
    with pytest.raises(EcsmDecodeError, match="refused"):
        small.send("GET", f"{server.url}/b", None, TIMEOUT)
    small.close()
    server.close()


@pytest.mark.parametrize("head", [
    b"HTTP/1.1 \xb2\xb2\xb2 OK\r\n",  # superscript digits: str.isdigit() says yes
    b"HTTP/1.1 2\xd9\xa00 OK\r\n", b"HTTP/1.1 1_00 OK\r\n", b"HTTP/1.1 2000 OK\r\n"])
def test_a_status_line_whose_code_is_not_three_ascii_digits_is_a_decode_error(
        transport: PlainHttpTransport, head: bytes) -> None:
    server = serve(reply(head + b"Content-Length: 2\r\n\r\n{}"))
    with pytest.raises(EcsmDecodeError, match="not an HTTP reply"):
        transport.send("GET", f"{server.url}/a", None, TIMEOUT)
    server.close()


@pytest.mark.parametrize("framing", [b"Content-Length: 1_0\r\n", b"Content-Length: \xb2\r\n",
                                     b"Transfer-Encoding: chunked\r\n"])
def test_lengths_that_are_not_plain_ascii_numbers_are_decode_errors(
        transport: PlainHttpTransport, framing: bytes) -> None:
    body = b"0x_a\r\n0123456789\r\n0\r\n\r\n" if b"chunked" in framing else b"0123456789"
    server = serve(reply(b"HTTP/1.1 200 OK\r\n" + framing + b"\r\n" + body))
    with pytest.raises(EcsmDecodeError, match="bad"):
        transport.send("GET", f"{server.url}/a", None, TIMEOUT)
    server.close()
