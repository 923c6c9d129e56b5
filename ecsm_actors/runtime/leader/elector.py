"""The elector of one controller kind: campaigns, renews, steps down, and the gate the
workers go through (see :mod:`ecsm_actors.runtime.leader` for the invariants).

Runs in controller processes: threads ``leader-elector``, ``leader-deadline`` and
``leader-watch``; :class:`AlwaysLeader` stands in for it with the LMDB store.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ecsm_actors.clock import Clock, RealClock
from ecsm_actors.errors import EcsmActorsError
from ecsm_actors.runtime.leader.record import (
    ROLE_LEADER,
    ROLE_STANDBY,
    LeaderRecord,
    check_durations,
    lease_key,
    left_by_dead_predecessor,
    pid_alive,
)

logger = logging.getLogger(__name__)

#: Exit code of a controller that lost its lease with reconciles still running.
EXIT_LEASE_LOST = 1


class LeaseClient(Protocol):
    """What the elector needs of :class:`ecsm_actors.etcd.client.EtcdClient`."""

    def range(self, key: bytes, range_end: bytes | None = None) -> Any: ...
    def watch(self, key: bytes, *, start_revision: int = 0, prev_kv: bool = True,
              progress_notify: bool = True) -> Any: ...
    def txn(self, compare: Sequence[Any], success: Sequence[Any],
            failure: Sequence[Any] = ()) -> Any: ...
    def lease_grant(self, ttl: int) -> int: ...
    def lease_keepalive(self, lease_id: int) -> int: ...
    def lease_revoke(self, lease_id: int) -> Any: ...
    def close(self) -> None: ...


def _exit_for_restart() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_LEASE_LOST)


class AlwaysLeader:
    """The single instance of an LMDB store: always leading, no election, no etcd."""

    def start(self) -> AlwaysLeader:
        return self

    def leading(self) -> bool:
        return True

    def wait_leading(self, timeout: float | None) -> bool:
        return True

    def alive(self) -> bool:
        return True

    def begin(self) -> bool:
        return True

    def end(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {"role": ROLE_LEADER, "leading": True, "transitions": 0}


class LeaderElector:
    """Campaigns for ``<prefix>leases/<kind>`` and keeps it; see the module doc."""

    def __init__(
        self,
        client: LeaseClient,
        kind: str,
        identity: str,
        *,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        prefix: str = "/ecsm-actors/",
        clock: Clock | None = None,
        wall: Callable[[], float] = time.time,
        on_change: Callable[[bool], None] | None = None,
        on_stuck: Callable[[], None] | None = None,
        boot: str = "",
        alive: Callable[[int], bool] = pid_alive,
    ) -> None:
        check_durations(lease_duration, renew_deadline, retry_period)
        self.client = client
        self.kind = kind
        self.identity = identity
        self.key = lease_key(prefix, kind)
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.ttl = max(1, math.ceil(lease_duration))
        self._clock: Clock = clock or RealClock()
        self._wall = wall
        self._on_change = on_change or (lambda leading: None)
        self._on_stuck = on_stuck or _exit_for_restart
        #: This computer's boot id ("" turns off taking over from a dead predecessor).
        self.boot = boot
        self._pid_alive = alive
        self._cond = threading.Condition()
        self._leading = False
        self._renewed = -math.inf  # send time of the last successful renewal or grant
        self._lease = 0  # our etcd lease, kept after a step-down until known dead
        self._in_flight = 0
        self._transitions = 0
        self._since = self._clock.now()
        self._holder = ""  # the holder last seen
        self._held_at = 0  # mod_revision of the key as last seen held by another (0: none)
        self._watch: Any = None  # the watch on that key, closed by stop()
        self._failing = False
        self._stopping = threading.Event()
        self._nudge = threading.Event()  # ends the elector's wait before its next try
        self._threads: list[threading.Thread] = []

    # -- the gate the workers go through ------------------------------------------------

    def _leading_locked(self) -> bool:
        return self._leading and self._clock.now() < self._renewed + self.renew_deadline

    def leading(self) -> bool:
        with self._cond:
            return self._leading_locked()

    def wait_leading(self, timeout: float | None) -> bool:
        """Whether leading, after waiting up to ``timeout`` for it if not."""
        with self._cond:
            if not self._leading_locked() and not self._stopping.is_set():
                self._clock.wait(self._cond, timeout)
            return self._leading_locked()

    def begin(self) -> bool:
        """May a reconcile start now? If so it counts as in flight until :meth:`end`."""
        with self._cond:
            if not self._leading_locked():
                return False
            self._in_flight += 1
            return True

    def end(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    # -- one round of the election ------------------------------------------------------

    def step(self) -> None:
        """Renew the lease we hold, or campaign; then enforce the deadline. Never raises
        an etcd error (see the module doc)."""
        with self._cond:
            lease = self._lease
        try:
            if lease:
                self._renew(lease)
            else:
                self._campaign()
        except EcsmActorsError as e:
            if not self._failing:
                logger.warning("%s: leader election cannot reach etcd, retrying every "
                               "%gs: %s", self.kind, self.retry_period, e)
            else:
                logger.debug("%s: leader election: %s", self.kind, e)
            self._failing = True
        else:
            if self._failing:
                logger.info("%s: leader election reaches etcd again", self.kind)
            self._failing = False
        self.check_deadline()

    def _renew(self, lease: int) -> None:
        sent = self._clock.now()
        ttl = self.client.lease_keepalive(lease)
        if ttl <= 0:
            self._forget_lease(lease)
            self._stop_leading("its lease expired", may_expire_at=self._clock.now())
            return
        kvs = self.client.range(self.key).kvs
        if not kvs or kvs[0].lease != lease:
            # The key went (a wiped prefix) while our lease lives: not ours any more.
            self._observe(kvs)
            self._forget_lease(lease)
            self._revoke(lease)
            self._stop_leading("its lease key was deleted", may_expire_at=self._clock.now())
            return
        with self._cond:
            if self._lease != lease:
                return  # stopped meanwhile
            self._renewed = max(self._renewed, sent)
            resumed = not self._leading
            if resumed:
                self._become_leader_locked()
            self._cond.notify_all()
        if resumed:
            self._said_leading("its lease is still alive")

    def _campaign(self) -> None:
        from ecsm_actors.etcd.client import Compare, TxnOp

        current = self.client.range(self.key).kvs
        if current and not self._release_dead_predecessor(current[0]):
            self._observe(current)
            return
        sent = self._clock.now()
        lease = self.client.lease_grant(self.ttl)
        record = LeaderRecord(holder_identity=self.identity, acquire_time=self._wall(),
                              lease_duration_seconds=self.ttl, boot_id=self.boot)
        try:
            result = self.client.txn([Compare.create_revision(self.key, "=", 0)],
                                     [TxnOp.put(self.key, record.encode(), lease=lease)],
                                     [TxnOp.range(self.key)])
        except EcsmActorsError:
            self._revoke(lease)  # the txn may have passed: never leave a key we cannot renew
            raise
        if not result.succeeded:
            self._revoke(lease)
            got = result.responses[0] if result.responses else None
            self._observe(getattr(got, "kvs", []))
            return
        with self._cond:
            if self._stopping.is_set():
                stopping = True
            else:
                stopping = False
                self._lease = lease
                self._renewed = sent
                self._holder = self.identity
                self._held_at = 0
                self._become_leader_locked()
                self._cond.notify_all()
        if stopping:
            self._revoke(lease)
            return
        self._said_leading("acquired")

    def _release_dead_predecessor(self, kv: Any) -> bool:
        """Delete the key if its holder was a process of this computer and run dir that is
        gone (see the module doc); whether the key is gone."""
        from ecsm_actors.etcd.client import Compare, TxnOp

        record = LeaderRecord.decode(kv.value)
        if not left_by_dead_predecessor(record, self.identity, self.boot, self._pid_alive):
            return False
        result = self.client.txn([Compare.mod_revision(self.key, "=", kv.mod_revision)],
                                 [TxnOp.delete(self.key)])
        if not result.succeeded:
            return False
        if kv.lease:
            self._revoke(kv.lease)
        logger.info("%s: the lease of %s, a process of this computer that is gone, released",
                    self.kind, record.holder_identity)
        return True

    def check_deadline(self) -> None:
        """Step down when no renewal succeeded within ``renew_deadline`` of its sending."""
        with self._cond:
            if not self._leading or self._clock.now() < self._renewed + self.renew_deadline:
                return
            expires = self._renewed + self.lease_duration
        self._stop_leading(f"no renewal within controller.renew_deadline "
                           f"({self.renew_deadline:g}s)", may_expire_at=expires)

    # -- transitions --------------------------------------------------------------------

    def _become_leader_locked(self) -> None:
        self._leading = True
        self._transitions += 1
        self._since = self._clock.now()

    def _said_leading(self, how: str) -> None:
        logger.info("%s: leading (%s; lease %s, identity %s)", self.kind, how,
                    self.key.decode(errors="replace"), self.identity)
        self._on_change(True)

    def _stop_leading(self, reason: str, *, may_expire_at: float) -> None:
        with self._cond:
            if not self._leading:
                return
            self._leading = False
            self._transitions += 1
            self._since = self._clock.now()
            in_flight = self._in_flight
            self._cond.notify_all()
        logger.warning("%s: stopped leading: %s; standby, %d reconcile(s) in flight",
                       self.kind, reason, in_flight)
        self._on_change(False)
        with self._cond:
            # In-flight reconciles may finish while no one else can lead yet.
            while self._in_flight and not self._leading and not self._stopping.is_set():
                remaining = may_expire_at - self._clock.now()
                if remaining <= 0:
                    break
                self._clock.wait(self._cond, remaining)
            stuck = 0 if self._leading or self._stopping.is_set() else self._in_flight
        if stuck:
            logger.error("%s: %d reconcile(s) still running when the lease may expire: "
                         "exiting, to be restarted as a candidate", self.kind, stuck)
            self._on_stuck()

    def _observe(self, kvs: Sequence[Any]) -> None:
        holder = LeaderRecord.decode(kvs[0].value).holder_identity if kvs else ""
        with self._cond:
            changed, self._holder = holder != self._holder, holder
            self._held_at = kvs[0].mod_revision if kvs and holder != self.identity else 0
            self._cond.notify_all()
        if changed and holder and holder != self.identity:
            logger.info("%s: the leader is %s", self.kind, holder)

    def _forget_lease(self, lease: int) -> None:
        with self._cond:
            if self._lease == lease:
                self._lease = 0

    def _revoke(self, lease: int) -> None:
        try:
            self.client.lease_revoke(lease)
        except EcsmActorsError as e:
            logger.debug("%s: lease %x not revoked (it expires by itself): %s",
                         self.kind, lease, e)

    # -- threads ------------------------------------------------------------------------

    def start(self) -> LeaderElector:
        for name, target in (("leader-elector", self._run), ("leader-deadline", self._deadline),
                             ("leader-watch", self._watch_holder)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def alive(self) -> bool:
        """False when one of the elector's threads died (a bug): the process should exit."""
        return self._stopping.is_set() or all(t.is_alive() for t in self._threads)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.step()
            self._clock.sleep(self._nudge, self.retry_period)
            self._nudge.clear()

    def watch_once(self) -> None:
        """Watch the key held by another until it is deleted, then nudge the elector to
        campaign at once; return when the watch ends (or at once: no holder seen)."""
        with self._cond:
            held_at = self._held_at
            if not held_at or self._stopping.is_set():
                self._clock.wait(self._cond, self.retry_period)
                return
        try:
            watch = self.client.watch(self.key, start_revision=held_at + 1, prev_kv=False,
                                      progress_notify=False)
        except EcsmActorsError as e:
            logger.debug("%s: no watch on the leader's key: %s", self.kind, e)
            self._stopping.wait(self.retry_period)
            return
        with self._cond:
            self._watch = watch
            stopping = self._stopping.is_set()
        try:
            if stopping:
                return
            for response in watch:
                if any(event.type == "DELETE" for event in response.events):
                    with self._cond:
                        if self._held_at == held_at:
                            self._held_at = 0
                    self._nudge.set()
                    return
                if response.canceled:
                    return
        except EcsmActorsError as e:
            logger.debug("%s: the watch on the leader's key ended: %s", self.kind, e)
            self._stopping.wait(self.retry_period)
        finally:
            with self._cond:
                self._watch = None
            watch.close()

    def _watch_holder(self) -> None:
        while not self._stopping.is_set():
            self.watch_once()

    def _deadline(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                if self._stopping.is_set():
                    return
                remaining = self._renewed + self.renew_deadline - self._clock.now() \
                    if self._leading else None
                if remaining is None or remaining > 0:
                    self._clock.wait(self._cond, remaining)
                    continue
            self.check_deadline()

    def stop(self) -> None:
        """Stop campaigning and renewing; revoke the lease (the key goes with it, so a
        standby leads at its next try). Call once the reconciles have drained."""
        self._stopping.set()
        self._nudge.set()
        with self._cond:
            watch = self._watch
            self._cond.notify_all()
        if watch is not None:
            watch.close()
        for t in self._threads:
            t.join(timeout=self.retry_period + 1.0)
        with self._cond:
            lease, self._lease = self._lease, 0
            was_leading = self._leading
            self._leading = False
            if was_leading:
                self._transitions += 1
            self._cond.notify_all()
        if lease:
            self._revoke(lease)
        if was_leading:
            logger.info("%s: stopped leading: shutting down, lease released", self.kind)
        self.client.close()

    # -- observability ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._cond:
            leading = self._leading_locked()
            return {"role": ROLE_LEADER if leading else ROLE_STANDBY,
                    "leading": leading,
                    "transitions": self._transitions,
                    "roleAge": round(max(0.0, self._clock.now() - self._since), 3),
                    "holder": self.identity if leading else self._holder,
                    "identity": self.identity,
                    "lease": self.key.decode(errors="replace")}
