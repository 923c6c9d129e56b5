"""The etcd v3 client of the project: etcd's JSON gateway over ``requests``.

Runs in whichever process talks to etcd (registry, controller runtime, ``store migrate``)
and is safe to share between threads. Why the gateway and not gRPC: ``requests`` is
already a dependency; grpcio + protobuf weigh tens of MiB and a heavy import, for calls
that are few and small here.

One retry mechanism at this layer only, failover: endpoints are tried in order starting
from the last one that answered, all within one deadline of ``request_timeout`` per call.
A request that surely was not applied (connection refused, connect timeout, a member
without a leader refusing it) goes to the next endpoint; so does any read. While some
member answers "no leader" (an election, or quorum lost), rounds over the endpoints go
on until the deadline: an election ends in a few election timeouts and the request then
succeeds; quorum lost answers ``Unavailable`` at the deadline. Linearizable requests
carry gRPC metadata ``hasleader=true`` so a member without a leader refuses at once
instead of waiting out etcd's own request timeout; serializable reads do not, and keep
answering from a member's local state while quorum is lost.

A write whose outcome is unknown (no answer in time, the connection broke, etcd's
"request timed out": e.g. a follower forwarded it to a leader that just died) is never
sent again: :class:`~ecsm_actors.errors.DeadlineExceeded` (an ``Unavailable`` with
``applied=None``) is raised and the caller re-reads. A plain ``Unavailable`` from a write
means it was surely not applied.

Errors: ``Unavailable`` (no endpoint reachable, no leader, quorum lost, timeout),
``StoreFull`` (NOSPACE), ``Expired`` (compacted revision), ``Internal`` (anything else);
each names the store and the endpoint tried.
"""

from __future__ import annotations

import json
import os
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

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
from ecsm_actors.etcd.watch import Watch, WatchEvent, WatchResponse
from ecsm_actors.etcd.wire import (
    Compare,
    KeyValue,
    RangeResult,
    TxnOp,
    TxnResult,
    b64,
    error_from_reply,
    error_message,
    is_no_leader,
    prefix_end,
    txn_body,
)

if TYPE_CHECKING:
    from ecsm_actors.config import Config

__all__ = ["Compare", "EtcdClient", "KeyValue", "RangeResult", "TxnOp", "TxnResult", "Watch",
           "WatchEvent", "WatchResponse", "prefix_end"]

#: gRPC metadata through grpc-gateway: refuse at once when the member has no leader.
REQUIRE_LEADER = {"Grpc-Metadata-hasleader": "true"}

#: Pause between two rounds over the endpoints while members report no leader, seconds.
ROUND_PAUSE = 0.05

Key = bytes | str
T = TypeVar("T")


class _Next(Exception):  # noqa: N818 - control flow inside _failover, never escapes
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


class EtcdClient:
    """A client of one etcd cluster (see the module docstring)."""

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
        self._http = self._session(pool=4)
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()

    @classmethod
    def from_config(cls, cfg: Config) -> EtcdClient:
        store = cfg.store
        return cls(store.etcd_endpoints, dial_timeout=store.etcd_dial_timeout,
                   request_timeout=store.etcd_request_timeout, ca_file=store.etcd_ca_file,
                   cert_file=store.etcd_cert_file, key_file=store.etcd_key_file)

    def _session(self, *, pool: int) -> requests.Session:
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

    # -- transport --------------------------------------------------------------------

    def _failover(self, send: Callable[[str, float], T]) -> T:
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

    def _call(self, path: str, body: dict[str, Any], *, read_only: bool,
              require_leader: bool = True) -> dict[str, Any]:
        """POST ``body`` to ``path`` with failover (see the module docstring)."""
        data = json.dumps(body)
        headers = REQUIRE_LEADER if require_leader else None

        def send(url: str, remaining: float) -> dict[str, Any]:
            try:
                reply = self._http.post(url + path, data=data, headers=headers,
                                        timeout=(min(self.dial_timeout, remaining), remaining))
                answer = self._decode(url, reply)
            except requests.RequestException as e:
                if read_only or _not_sent(e):
                    raise _Next(_reason(e)) from e
                raise DeadlineExceeded(f"etcd store unavailable ({url}): {_reason(e)}; the "
                                       "write may or may not have been applied",
                                       applied=None) from e
            if reply.status_code < 400:
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

        return self._failover(send)

    def _decode(self, url: str, reply: requests.Response) -> dict[str, Any]:
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

    # -- key-value --------------------------------------------------------------------

    def range(self, key: Key, range_end: Key | None = None, *, revision: int = 0,
              limit: int = 0, serializable: bool = False, keys_only: bool = False,
              count_only: bool = False) -> RangeResult:
        """The keys in [key, range_end) (only ``key`` when range_end is None), at
        ``revision`` (0: the latest). ``serializable`` answers from the member's local
        state, possibly stale, without a leader."""
        body: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        if revision:
            body["revision"] = str(revision)
        if limit:
            body["limit"] = str(limit)
        for name, flag in (("serializable", serializable), ("keys_only", keys_only),
                           ("count_only", count_only)):
            if flag:
                body[name] = True
        return RangeResult.from_wire(self._call("/v3/kv/range", body, read_only=True,
                                                require_leader=not serializable))

    def put(self, key: Key, value: Key, lease: int = 0) -> int:
        """Write ``value`` at ``key``; the store's revision after it."""
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        return _revision(self._call("/v3/kv/put", body, read_only=False))

    def delete(self, key: Key, range_end: Key | None = None) -> tuple[int, int]:
        """Delete [key, range_end); (keys deleted, the store's revision after it)."""
        body: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            body["range_end"] = b64(range_end)
        answer = self._call("/v3/kv/deleterange", body, read_only=False)
        return int(answer.get("deleted") or 0), _revision(answer)

    def txn(self, compare: Sequence[Compare], success: Sequence[TxnOp],
            failure: Sequence[TxnOp] = ()) -> TxnResult:
        """If every ``compare`` holds, run ``success``, else ``failure``: atomically,
        in one revision."""
        read_only = all(op.kind == "range" for op in (*success, *failure))
        return TxnResult.from_wire(self._call("/v3/kv/txn", txn_body(compare, success,
                                                                      failure),
                                              read_only=read_only))

    def compact(self, revision: int) -> None:
        """Forget the history before ``revision`` (watches and reads below it: Expired)."""
        self._call("/v3/kv/compaction", {"revision": str(revision)}, read_only=False)

    # -- leases -----------------------------------------------------------------------

    def lease_grant(self, ttl: int) -> int:
        """A new lease of ``ttl`` seconds; its id."""
        return int(self._call("/v3/lease/grant", {"TTL": str(ttl)}, read_only=False)["ID"])

    def lease_keepalive(self, lease_id: int) -> int:
        """Renew the lease once; the seconds it has left (0: it expired or never was)."""
        answer = self._call("/v3/lease/keepalive", {"ID": str(lease_id)}, read_only=True)
        result = answer.get("result")
        if not isinstance(result, dict):
            if "error" in answer:
                raise error_from_reply(self.endpoint, 0, answer)
            return 0
        return int(result.get("TTL") or 0)

    def lease_revoke(self, lease_id: int) -> None:
        """End the lease now, deleting its keys (a lease already gone is no error)."""
        try:
            self._call("/v3/lease/revoke", {"ID": str(lease_id)}, read_only=True)
        except Internal as e:
            if "lease not found" not in e.message:
                raise

    def lease_ttl(self, lease_id: int) -> int:
        """The seconds the lease has left (-1: no such lease)."""
        answer = self._call("/v3/lease/timetolive", {"ID": str(lease_id)}, read_only=True)
        return int(answer.get("TTL") or 0)

    # -- watch ------------------------------------------------------------------------

    def watch(self, key: Key, range_end: Key | None = None, *, start_revision: int = 0,
              prev_kv: bool = True, progress_notify: bool = True) -> Watch:
        """The changes of [key, range_end) from ``start_revision`` (0: from now on),
        returned once etcd confirmed the watch, so no later change is missed. If
        ``start_revision`` was compacted, the first ``next()`` raises ``Expired`` (etcd
        creates the watch, then cancels it)."""
        create: dict[str, Any] = {"key": b64(key)}
        if range_end is not None:
            create["range_end"] = b64(range_end)
        if start_revision:
            create["start_revision"] = str(start_revision)
        if prev_kv:
            create["prev_kv"] = True
        if progress_notify:
            create["progress_notify"] = True
        data = json.dumps({"create_request": create})

        def send(url: str, remaining: float) -> Watch:
            session = self._session(pool=1)
            try:
                reply = session.post(url + "/v3/watch", data=data, headers=REQUIRE_LEADER,
                                     stream=True,
                                     timeout=(min(self.dial_timeout, remaining), remaining))
            except requests.RequestException as e:
                session.close()
                raise _Next(_reason(e)) from e
            if reply.status_code >= 400:
                try:
                    answer = self._decode(url, reply)
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

        watch = self._failover(send)
        self._watches.add(watch)
        return watch

    # -- maintenance ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The answering member's status: ``leader`` and ``member_id`` (0 leader: none),
        ``raft_term``, ``db_size``, ``db_size_in_use``, ``revision``, ``cluster_id``,
        ``version``."""
        answer = self._call("/v3/maintenance/status", {}, read_only=True,
                            require_leader=False)
        header = answer.get("header") or {}
        return {"leader": int(answer.get("leader") or 0),
                "member_id": int(header.get("member_id") or 0),
                "raft_term": int(answer.get("raftTerm") or 0),
                "db_size": int(answer.get("dbSize") or 0),
                "db_size_in_use": int(answer.get("dbSizeInUse") or 0),
                "revision": int(header.get("revision") or 0),
                "cluster_id": str(header.get("cluster_id") or ""),
                "version": str(answer.get("version") or ""),
                "endpoint": self.endpoint}

    def alarms(self) -> list[str]:
        """The alarms raised in the cluster (``NOSPACE``, ``CORRUPT``), once each."""
        answer = self._call("/v3/maintenance/alarm", {"action": "GET"}, read_only=True)
        names = {str(a.get("alarm")) for a in answer.get("alarms") or () if isinstance(a, dict)}
        return sorted(names)

    def close(self) -> None:
        """Close every open watch and the connections (idempotent)."""
        for watch in list(self._watches):
            watch.close()
        self._http.close()

    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _revision(answer: dict[str, Any]) -> int:
    return int((answer.get("header") or {}).get("revision") or 0)
