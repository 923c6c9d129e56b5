"""The etcd v3 client of the project: etcd's JSON gateway over ``requests``.

Runs in whichever process talks to etcd (registry, controller runtime, ``store migrate``)
and is safe to share between threads. Why the gateway and not gRPC: ``requests`` is
already a dependency; grpcio + protobuf weigh tens of MiB and a heavy import, for calls
that are few and small here. Keys and values are ``bytes`` (``str`` is UTF-8 encoded).

One retry mechanism at this layer only, failover to the next endpoint within one request
deadline (:mod:`ecsm_actors.etcd.transport` has the rules); callers never retry the same
write blindly. A write whose outcome is unknown (no answer in time, the connection
broke, etcd's "request timed out": e.g. a follower forwarded it to a leader that just
died) raises :class:`~ecsm_actors.errors.DeadlineExceeded` (an ``Unavailable`` with
``applied=None``) and the caller re-reads; a plain ``Unavailable`` from a write means it
was surely not applied.

Errors: ``Unavailable`` (no endpoint reachable, no leader, quorum lost, timeout),
``StoreFull`` (NOSPACE), ``Expired`` (compacted revision), ``Internal`` (anything else);
each names the store and the endpoint tried.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ecsm_actors.errors import Internal
from ecsm_actors.etcd.transport import Transport
from ecsm_actors.etcd.watch import Watch, WatchEvent, WatchResponse
from ecsm_actors.etcd.wire import (
    Compare,
    KeyValue,
    RangeResult,
    TxnOp,
    TxnResult,
    b64,
    key_body,
    prefix_end,
    txn_body,
)

if TYPE_CHECKING:
    from ecsm_actors.config import Config

__all__ = ["Compare", "EtcdClient", "KeyValue", "RangeResult", "TxnOp", "TxnResult", "Watch",
           "WatchEvent", "WatchResponse", "prefix_end"]

Key = bytes | str


class EtcdClient:
    """A client of one etcd cluster (see the module docstring)."""

    def __init__(self, endpoints: Sequence[str], *, dial_timeout: float = 2.0,
                 request_timeout: float = 5.0, ca_file: str = "", cert_file: str = "",
                 key_file: str = "") -> None:
        self._transport = Transport(endpoints, dial_timeout=dial_timeout,
                                    request_timeout=request_timeout, ca_file=ca_file,
                                    cert_file=cert_file, key_file=key_file)
        self.endpoints = self._transport.endpoints
        self.dial_timeout = dial_timeout
        self.request_timeout = request_timeout
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()

    @classmethod
    def from_config(cls, cfg: Config) -> EtcdClient:
        store = cfg.store
        return cls(store.etcd_endpoints, dial_timeout=store.etcd_dial_timeout,
                   request_timeout=store.etcd_request_timeout, ca_file=store.etcd_ca_file,
                   cert_file=store.etcd_cert_file, key_file=store.etcd_key_file)

    @property
    def endpoint(self) -> str:
        """The endpoint the next request goes to first (the last one that answered)."""
        return self._transport.endpoint

    def _call(self, path: str, body: dict[str, Any], *, read_only: bool,
              require_leader: bool = True) -> dict[str, Any]:
        return self._transport.call(path, body, read_only=read_only,
                                    require_leader=require_leader)

    # -- key-value --------------------------------------------------------------------

    def range(self, key: Key, range_end: Key | None = None, *, revision: int = 0,
              limit: int = 0, serializable: bool = False, keys_only: bool = False,
              count_only: bool = False) -> RangeResult:
        """The keys in [key, range_end) (only ``key`` when range_end is None), at
        ``revision`` (0: the latest). ``serializable`` answers from the member's local
        state, possibly stale, without a leader."""
        body = key_body(key, range_end, revision=revision, limit=limit,
                        serializable=serializable, keys_only=keys_only,
                        count_only=count_only)
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
        answer = self._call("/v3/kv/deleterange", key_body(key, range_end), read_only=False)
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
        answer = self._call("/v3/lease/grant", {"TTL": str(ttl)}, read_only=False)
        return int(answer["ID"])

    def lease_keepalive(self, lease_id: int) -> int:
        """Renew the lease once; the seconds it has left (0: it expired or never was)."""
        answer = self._call("/v3/lease/keepalive", {"ID": str(lease_id)}, read_only=True)
        result = answer.get("result")
        return int(result.get("TTL") or 0) if isinstance(result, dict) else 0

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
        create = key_body(key, range_end, start_revision=start_revision, prev_kv=prev_kv,
                          progress_notify=progress_notify)
        watch = self._transport.open_watch(create, start_revision)
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
        self._transport.close()

    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _revision(answer: dict[str, Any]) -> int:
    return int((answer.get("header") or {}).get("revision") or 0)
