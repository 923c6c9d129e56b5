"""etcd, spoken through its v3 JSON gateway: the client the etcd store backend, the
event publisher and leader election share (see :mod:`ecsm_actors.etcd.client`)."""

from __future__ import annotations

from ecsm_actors.etcd.client import EtcdClient
from ecsm_actors.etcd.watch import Watch, WatchEvent, WatchResponse
from ecsm_actors.etcd.wire import (
    Compare,
    KeyValue,
    RangeResult,
    TxnOp,
    TxnResult,
    prefix_end,
)

__all__ = ["Compare", "EtcdClient", "KeyValue", "RangeResult", "TxnOp", "TxnResult", "Watch",
           "WatchEvent", "WatchResponse", "prefix_end"]
