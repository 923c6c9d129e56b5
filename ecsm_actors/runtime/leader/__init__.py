"""Leader election of a controller kind: one leader per store, the other instances standby.

Submodules: ``record`` (the lock's key and record, who may take it over, reading every
lock), ``elector`` (:class:`LeaderElector`, :class:`AlwaysLeader`).

Runs in controller processes (threads ``leader-elector``, which campaigns and renews,
``leader-deadline``, which enforces the renew deadline, and ``leader-watch``, which wakes a
standby's campaign as soon as the leader's key is deleted) and in ``ecsm-operator stats``
(:func:`read_leases`). With ``store.backend = "etcd"`` the controller runtime elects
through :class:`LeaderElector`, directly on etcd (not through the registry); with LMDB
it uses :class:`AlwaysLeader`: the single instance leads, without any etcd traffic.

The lock is the key ``<prefix>leases/<kind>``, holding a :class:`LeaderRecord` (JSON,
Kubernetes' leader election record: ``holderIdentity``, ``acquireTime``,
``leaseDurationSeconds``) attached to an etcd lease of ``ceil(lease_duration)`` seconds:
a candidate that finds it absent grants a lease and creates it in a txn on
``create_revision == 0``; the leader keeps the lease alive every ``retry_period`` and
checks that the key is still its own; when the lease expires (or is revoked), etcd deletes
the key and a standby takes it at once: it watches the key, and polls it every
``retry_period`` besides (the watch only hastens the next try, so a silent watch costs
nothing but that).

Invariants:

* :meth:`LeaderElector.leading` is true only before ``renewed + renew_deadline``, where
  ``renewed`` is the SEND time of the last successful keepalive (or of the lease grant):
  etcd cannot expire the lease before ``renewed + lease_duration``, so a leader that cannot
  renew stops dispatching reconciles before any standby can lead, whatever an etcd call
  blocks on. The deadline thread turns that moment into a step-down at once.
* A reconcile starts only through :meth:`~LeaderElector.begin` (true while leading) and ends
  with :meth:`~LeaderElector.end`. After a step-down, in-flight reconciles may finish
  until the lease may have expired; if some are still running then, ``on_stuck`` is called
  (the controller process exits, to be restarted as a candidate — Kubernetes' leader
  election exits too), so no reconcile of this instance overlaps a new leader's for longer.
* A step-down is followed by a new campaign; if the old lease turns out alive and the key
  still ours, leadership resumes without a gap for anyone.
* :meth:`~LeaderElector.stop` revokes the lease: the key goes with it, so failover after a
  clean stop is immediate rather than a lease duration later.
* A controller restarted in place (same computer — same boot id —, same run dir) that
  finds the lease held by its predecessor, a process that no longer exists, deletes the key
  (a txn on the ``mod_revision`` it read) and revokes that lease instead of waiting for it
  to expire: a crash that the supervisor repairs in milliseconds costs no lease duration.
  Holders on another computer, of another run dir, or whose pid lives, are waited for.
* etcd errors never leave the elector's threads: a failed campaign is retried every
  ``retry_period``, a failed renewal until the deadline; the first failure of a streak is a
  WARNING, the rest DEBUG, the recovery one INFO line.
* Every leadership change is one log line and counted (``transitions`` in the
  controller's stats, ``ecsm_actors_controller_election_transitions_total``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ecsm_actors.runtime.leader.elector import (
    EXIT_LEASE_LOST,
    AlwaysLeader,
    LeaderElector,
    LeaseClient,
)
from ecsm_actors.runtime.leader.record import (
    ROLE_LEADER,
    ROLE_STANDBY,
    ROLES,
    LeaderRecord,
    boot_id,
    check_durations,
    identity,
    lease_holders,
    lease_key,
    leases_prefix,
    left_by_dead_predecessor,
    pid_alive,
    read_leases,
)

__all__ = ["EXIT_LEASE_LOST", "ROLES", "ROLE_LEADER", "ROLE_STANDBY", "AlwaysLeader",
           "LeaderElector", "LeaderRecord", "LeaseClient", "boot_id", "check_durations",
           "elector_for", "identity", "lease_holders", "lease_key", "leases_prefix",
           "left_by_dead_predecessor", "pid_alive", "read_leases"]


def elector_for(cfg: Any, kind: str, *, on_change: Callable[[bool], None] | None = None,
                ) -> LeaderElector | AlwaysLeader:
    """The controller runtime's choice: an elector on etcd, or :class:`AlwaysLeader` with
    LMDB. Raises ConfigError on durations that cannot work."""
    if cfg.store.backend != "etcd":
        return AlwaysLeader()
    settings = cfg.controller
    check_durations(settings.lease_duration, settings.renew_deadline, settings.retry_period)
    from ecsm_actors.etcd.client import EtcdClient

    return LeaderElector(EtcdClient.from_config(cfg), kind, identity(cfg.run_dir),
                         lease_duration=settings.lease_duration,
                         renew_deadline=settings.renew_deadline,
                         retry_period=settings.retry_period, prefix=cfg.store.etcd_prefix,
                         on_change=on_change, boot=boot_id())
