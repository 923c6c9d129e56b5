"""The lock of leader election: its key, the record it holds, who may hold it; and reading
every lock (``ecsm-operator stats``).

Runs in controller processes (through :mod:`.elector`) and in ``ecsm-operator``. Pure
values and two reads of this computer (boot id, whether a pid lives), plus
:func:`read_leases` / :func:`lease_holders` on an etcd client.
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecsm_actors.errors import ConfigError

ROLE_LEADER = "leader"
ROLE_STANDBY = "standby"
#: The values of a controller's ``election.role`` (what ``ecsm-operator ps`` shows).
ROLES = (ROLE_LEADER, ROLE_STANDBY)


def identity(run_dir: str | Path) -> str:
    """``<hostname>:<run dir>:<pid>``: two operator instances on one computer differ, and
    so do two processes of one instance."""
    return f"{socket.gethostname()}:{run_dir}:{os.getpid()}"


def leases_prefix(prefix: str) -> bytes:
    """``<prefix>leases/``, as :mod:`ecsm_actors.store.etcd_layout` lays keys out (a
    prefix always ends with ``/``; not imported: a controller loads no store code)."""
    return (prefix if prefix.endswith("/") else prefix + "/").encode() + b"leases/"


def lease_key(prefix: str, kind: str) -> bytes:
    """``<prefix>leases/<kind>``, the lock of one controller kind."""
    return leases_prefix(prefix) + kind.encode()


@dataclass(frozen=True, kw_only=True)
class LeaderRecord:
    """The value of a lease key: who leads, since when (wall clock, seconds)."""

    holder_identity: str
    acquire_time: float = 0.0
    lease_duration_seconds: int = 0
    #: The holder's computer since its last boot (``/proc/sys/kernel/random/boot_id``).
    boot_id: str = ""

    def encode(self) -> bytes:
        return json.dumps({"holderIdentity": self.holder_identity,
                           "acquireTime": self.acquire_time,
                           "leaseDurationSeconds": self.lease_duration_seconds,
                           "bootId": self.boot_id},
                          separators=(",", ":")).encode()

    @classmethod
    def decode(cls, value: bytes) -> LeaderRecord:
        """Never raises: a value that is not a record is read as a bare identity."""
        try:
            doc = json.loads(value)
        except ValueError:
            doc = None
        if not isinstance(doc, dict) or not isinstance(doc.get("holderIdentity"), str):
            return cls(holder_identity=value.decode(errors="replace")[:512])
        when, ttl = doc.get("acquireTime"), doc.get("leaseDurationSeconds")
        boot = doc.get("bootId")
        return cls(holder_identity=doc["holderIdentity"][:512],
                   acquire_time=float(when) if isinstance(when, int | float)
                   and math.isfinite(when) else 0.0,
                   lease_duration_seconds=ttl if isinstance(ttl, int) else 0,
                   boot_id=boot[:64] if isinstance(boot, str) else "")


def check_durations(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """Kubernetes' rule: lease_duration > renew_deadline > retry_period > 0; ConfigError."""
    if not 0 < retry_period < renew_deadline < lease_duration:
        raise ConfigError(
            "leader election needs controller.lease_duration > controller.renew_deadline > "
            f"controller.retry_period > 0, got {lease_duration:g} / {renew_deadline:g} / "
            f"{retry_period:g} s")


def boot_id() -> str:
    """This computer's boot id (changes at every boot; "" where there is none)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this computer (a zombie counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def left_by_dead_predecessor(record: LeaderRecord, identity: str, boot: str,
                             alive: Callable[[int], bool] = pid_alive) -> bool:
    """Whether ``record`` was written by a process of this computer (``boot``) and run dir
    (``identity`` but its pid) that no longer exists: the lock of a crashed predecessor,
    which its successor may release at once. "" as ``boot`` says no."""
    place, _, pid = record.holder_identity.rpartition(":")
    return bool(boot) and record.boot_id == boot and place == identity.rpartition(":")[0] \
        and pid.isdigit() and record.holder_identity != identity and not alive(int(pid))


def read_leases(client: Any, prefix: str, *, wall: Callable[[], float] = time.time,
                ) -> dict[str, dict[str, Any]]:
    """Every lease key under ``<prefix>leases/``: kind → holder, age (seconds since it
    acquired the lease, by its wall clock), the etcd lease and its TTL left."""
    from ecsm_actors.etcd.client import prefix_end

    start = leases_prefix(prefix)
    out: dict[str, dict[str, Any]] = {}
    for kv in client.range(start, prefix_end(start)).kvs:
        record = LeaderRecord.decode(kv.value)
        out[kv.key[len(start):].decode(errors="replace")] = {
            "holder": record.holder_identity,
            "age": round(max(0.0, wall() - record.acquire_time), 1)
            if record.acquire_time else None,
            "lease": f"{kv.lease:x}",
            "ttl": client.lease_ttl(kv.lease) if kv.lease else None,
        }
    return out


def lease_holders(cfg: Any, name: str | None = None) -> dict[str, dict[str, Any]]:
    """:func:`read_leases` on the configured etcd store (only ``name``'s when given), for
    ``ecsm-operator stats``; raises what the etcd client raises."""
    from ecsm_actors.etcd.client import EtcdClient

    with EtcdClient.from_config(cfg) as client:
        leases = read_leases(client, cfg.store.etcd_prefix)
    return {kind: lease for kind, lease in leases.items() if name is None or kind == name}
