"""How the etcd client reaches the cluster: sessions, endpoints, failover, one deadline.

Owned by :class:`~ecsm_actors.etcd.client.EtcdClient` (one transport per client, shared
by its threads: ``requests`` sessions pool their connections; a watch gets a session of
its own). The failover rules, the only retry mechanism at this layer:

* endpoints are tried in order from the last one that answered, all within one deadline
  of ``request_timeout`` per call;
* a request that surely was not applied (connection refused, connect timeout, TLS
  handshake failed, a member without a leader refusing it) goes to the next endpoint; so
  does any read;
* while some member answers "no leader" (an election, or quorum lost), rounds over the
  endpoints go on until the deadline: an election ends within a few election timeouts
  and the request then succeeds; quorum lost answers ``Unavailable`` at the deadline;
* a write whose outcome is unknown (no answer in time, the connection broke, etcd's
  "request timed out") is never sent again: ``DeadlineExceeded`` (``applied=None``).

Linearizable requests carry gRPC metadata ``hasleader=true`` (grpc-gateway forwards
``Grpc-Metadata-*`` headers), so a member without a leader refuses at once instead of
waiting out etcd's own request timeout; serializable reads and status do not.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter

from ecsm_actors.errors import (
    ConfigError,
    DeadlineExceeded,
    Internal,
    Unavailable,
    clip_text,
)
from ecsm_actors.etcd.watch import Watch
from ecsm_actors.etcd.wire import error_from_reply, error_message, is_no_leader

#: gRPC metadata through grpc-gateway: refuse at once when the member has no leader.
REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}

#: Pause between two rounds over the endpoints while members report no leader, seconds.
ROUND_PAUSE = 0.05

T = TypeVar("T")


class _Next(Exception):  # noqa: N818 - control flow inside failover, never escapes
    """This endpoint did not serve the request; try the next one."""

    def __init__(self, reason: str, *, again: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.again = again


def _not_sent(exc: requests.RequestException) -> bool:
    """True when the request surely never reached etcd (refused, connect timeout, TLS
    handshake failed)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.SSLError):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError
                      | urllib3.exceptions.ConnectTimeoutError)


def _reason(exc: requests.RequestException) -> str:
    """One line for why a request failed, without urllib3's object reprs."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, requests.exceptions.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.exceptions.SSLError):
        detail = str(exc.args[0].reason if exc.args and hasattr(exc.args[0], "reason")
                     else exc)
        return f"TLS: {clip_text(detail, 200)}"
    if _not_sent(exc):
        detail = str(exc.args[0].reason).rsplit("new connection: ", 1)[-1]
        return f"cannot connect: {clip_text(detail, 120)}"
    return clip_text(str(exc), 200)


class Transport:
    """The endpoints of one etcd cluster and the way to them (see the module docstring)."""

    def __init__(self, endpoints: Sequence[str], *, dial_timeout: float = 2.0,
                 request_timeout: float = 5.0, ca_file: str = "", cert_file: str = "",
                 key_file: str = "") -> None:
        if isinstance(endpoints, str):
            endpoints = [endpoints]
        urls = tuple(e.strip().rstrip("/") for e in endpoints if e.strip())
        if not urls:
            raise ConfigError("store.etcd_endpoints: give at least one etcd client URL")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"store.etcd_endpoints: {clip_text(url, 80)!r} is not "
                                  "an http:// or https:// URL")
        if bool(cert_file) != bool(key_file):
            raise ConfigError("store.etcd_cert_file and store.etcd_key_file: give both "
                              "or neither")
        for name, path in (("ca_file", ca_file), ("cert_file", cert_file),
                           ("key_file", key_file)):
            if path and not os.path.isfile(path):
                raise ConfigError(f"store.etcd_{name}: no such file: {clip_text(path, 200)}")
        self.endpoints = urls
        self.dial_timeout = dial_timeout
        self.request_timeout = request_timeout
        self._tls = (ca_file, cert_file, key_file)
        self._current = 0
        self.http = self.session(pool=4)

    def session(self, *, pool: int) -> requests.Session:
        session = requests.Session()
        session.trust_env = False  # no proxy or .netrc from the environment
        ca_file, cert_file, key_file = self._tls
        session.verify = ca_file or True
        if cert_file:
            session.cert = (cert_file, key_file)
        adapter = HTTPAdapter(pool_connections=len(self.endpoints), pool_maxsize=pool,
                              max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["Content-Type"] = "application/json"
        return session

    @property
    def endpoint(self) -> str:
        """The endpoint the next request goes to first (the last one that answered)."""
        return self.endpoints[self._current]

    def failover(self, send: Callable[[str, float], T]) -> T:
        """``send(url, seconds left)`` to each endpoint in turn from the last one that
        answered, until one answers or the request deadline passes. ``send`` raises
        :class:`_Next` to go to the next endpoint (``again``: a member without a leader,
        worth another round while an election may end; a round where no member said that
        ends the attempts: no endpoint reachable)."""
        deadline = time.monotonic() + self.request_timeout
        start, count = self._current, len(self.endpoints)
        failures: dict[str, str] = {}
        again = False
        step = 0
        while True:
            remaining = deadline - time.monotonic()
            if step and step % count == 0:
                if not again or remaining < ROUND_PAUSE:
                    break
                again = False
                time.sleep(ROUND_PAUSE)
                remaining -= ROUND_PAUSE
            if remaining <= 0:
                break
            index = (start + step) % count
            step += 1
            url = self.endpoints[index]
            try:
                value = send(url, remaining)
            except _Next as e:
                failures[url] = e.reason
                again = again or e.again
                continue
            self._current = index
            return value
        tried = "; ".join(f"{url}: {why}" for url, why in failures.items())
        raise Unavailable(f"etcd store unavailable ({', '.join(self.endpoints)}): no endpoint "
                          f"answered: {tried or 'no answer within the request timeout'}")

    def call(self, path: str, body: dict[str, Any], *, read_only: bool,
             require_leader: bool = True) -> dict[str, Any]:
        """POST ``body`` to ``path`` with failover (see the module docstring)."""
        data = json.dumps(body)
        headers = REQUIRE_LEADER if require_leader else None

        def send(url: str, remaining: float) -> dict[str, Any]:
            try:
                reply = self.http.post(url + path, data=data, headers=headers,
                                       timeout=(min(self.dial_timeout, remaining), remaining))
                answer = self.decode(url, reply)
            except requests.RequestException as e:
                if read_only or _not_sent(e):
                    raise _Next(_reason(e)) from e
                raise DeadlineExceeded(f"etcd store unavailable ({url}): {_reason(e)}; the "
                                       "write may or may not have been applied",
                                       applied=None) from e
            # A streaming endpoint (lease keepalive) may answer 200 then an error line.
            if reply.status_code < 400 and not isinstance(answer.get("error"), dict):
                return answer
            error = error_from_reply(url, reply.status_code, answer)
            message = error_message(answer)[1] or f"HTTP {reply.status_code}"
            if isinstance(error, Unavailable):
                if is_no_leader(message):
                    raise _Next(message, again=True)
                if read_only:
                    raise _Next(message)
                raise DeadlineExceeded(f"{error.message}; the write may or may not have been "
                                       "applied", applied=None)
            raise error

        return self.failover(send)

    def decode(self, url: str, reply: requests.Response) -> dict[str, Any]:
        try:
            text = reply.text
            # Streaming endpoints (lease keepalive) answer newline-delimited objects.
            answer = json.loads(text.split("\n", 1)[0] if "\n" in text.strip() else text)
        except ValueError as e:
            raise Internal(f"etcd store error ({url}): HTTP {reply.status_code}, an answer "
                           "that is not etcd's JSON") from e
        if not isinstance(answer, dict):
            raise Internal(f"etcd store error ({url}): HTTP {reply.status_code}, an answer "
                           "that is not a JSON object")
        return answer

    def open_watch(self, create: dict[str, Any], start_revision: int) -> Watch:
        """A watch of the ``create_request`` ``create``, once etcd confirmed it."""
        data = json.dumps({"create_request": create})

        def send(url: str, remaining: float) -> Watch:
            session = self.session(pool=1)
            try:
                reply = session.post(url + "/v3/watch", data=data, headers=REQUIRE_LEADER,
                                     stream=True,
                                     timeout=(min(self.dial_timeout, remaining), remaining))
            except requests.RequestException as e:
                session.close()
                raise _Next(_reason(e)) from e
            if reply.status_code >= 400:
                try:
                    answer = self.decode(url, reply)
                except requests.RequestException as e:
                    raise _Next(_reason(e)) from e
                finally:
                    reply.close()
                    session.close()
                error = error_from_reply(url, reply.status_code, answer)
                if isinstance(error, Unavailable):
                    message = error_message(answer)[1]
                    raise _Next(message, again=is_no_leader(message))
                raise error
            watch = Watch(endpoint=url, session=session, reply=reply,
                          start_revision=start_revision)
            try:
                watch.wait_created()
            except Unavailable as e:
                raise _Next(e.message, again=is_no_leader(e.message)) from e
            return watch

        return self.failover(send)

    def close(self) -> None:
        self.http.close()
