"""Writes for store tests, on either backend (LMDB or etcd): CREATE and BATCH builders,
one write executed, an event occurrence (RECORD_EVENTS), a fake wall clock the stores
read, and a store reopened on its data."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ecsm_actors.api.names import format_timestamp
from ecsm_actors.errors import RegistryError
from ecsm_actors.protocol import Op, Request
from ecsm_actors.store import Outcome, Write
from tests.registry_samples import service

if TYPE_CHECKING:
    from ecsm_actors.store import Store
    from ecsm_actors.store.etcd_store import EtcdStore

S = TypeVar("S", bound="Store | EtcdStore")

#: The fake clock's start, seconds since the epoch.
NOW = 1_700_000_000.0


class FakeClock:
    """A wall clock a test sets: ``clock.now += 3601``."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


def create(name: str, request_id: str | None = None, **meta: Any) -> Write:
    """CREATE of the ECSMService ``name`` (metadata ``meta``)."""
    fields: dict[str, Any] = {"object": service(name, **meta)}
    if request_id is not None:
        fields["requestId"] = request_id
    return Write(op=Op.CREATE, fields=fields)


def batch(*writes: Write, atomic: bool = False, request_id: str | None = None) -> Write:
    """BATCH of ``writes``."""
    fields: dict[str, Any] = {"writes": [Request(id=i, op=w.op, fields=w.fields)
                                         for i, w in enumerate(writes)], "atomic": atomic}
    if request_id is not None:
        fields["requestId"] = request_id
    return Write(op=Op.BATCH, fields=fields)


def occurrence(name: str, *, message: str = "back-off restarting", at: float = NOW,
               count: int = 1, reason: str = "BackOff") -> dict[str, Any]:
    """A Warning occurrence about the ECSMService ``name``, seen at ``at``."""
    ts = format_timestamp(at)
    return {"involvedObject": {"kind": "ECSMService", "namespace": "default", "name": name},
            "type": "Warning", "reason": reason, "message": message, "count": count,
            "firstTimestamp": ts, "lastTimestamp": ts,
            "source": {"component": "service-controller"}}


def names(store: Store | EtcdStore) -> list[str]:
    """The names of the ECSMServices the store holds, sorted."""
    return sorted(o["metadata"]["name"] for o in store.list_objects("ECSMService")[0])


def one(store: Store | EtcdStore, write: Write) -> Outcome | RegistryError:
    """The outcome of ``write`` executed alone."""
    return store.execute([write])[0]


@contextlib.contextmanager
def reopening(open_one: Callable[..., S]) -> Iterator[Callable[..., S]]:
    """``open_(**options)``: a store opened by ``open_one(**options)`` after closing the
    one opened before (a test reopens its store on the same data); the last one is closed
    on leaving."""
    opened: list[S] = []

    def open_(**options: Any) -> S:
        for s in opened:
            s.close()
        opened.clear()
        store = open_one(**options)
        opened.append(store)
        return store

    yield open_
    for s in opened:
        s.close()
