"""The drill's desired-state writer: retried registry writes, each one recorded in the ledger.

Runs in the drill process, in its own thread (:meth:`DesiredStateWriter.start`), with its
own :class:`~ecsm_actors.registry.client.RegistryClient`. Callers :meth:`submit` write
operations; the thread performs them in order per object key, as a user retrying until
the registry says "done" would:

* a write is *intended* in the ledger before it is sent and *acknowledged* with the
  object of the reply (or "deleted") once the registry confirms it;
* ``Unavailable`` (the registry is down, stopped or restarting) leaves the write at the
  head of its key's queue; the next attempt first re-reads the object, so a write that
  was committed although its reply was lost is recognised and acknowledged, not redone;
* ``Conflict`` re-reads and re-applies the change (optimistic concurrency);
* a create answered ``AlreadyExists`` while the old object is still terminating waits.

Keys take turns, one write each per round; the writes labelled ``canary`` go first in
every round: they time recoveries (:mod:`.recovery`), and a canary change queued behind
thousands of burst writes would time the drill's own backlog, not the operator.

Invariants: at most one write per key in flight, so the ledger has one pending state per
key at most; nothing here raises into the caller's thread.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ecsm_actors.drill.invariants import contains
from ecsm_actors.drill.ledger import (
    DELETED,
    Ledger,
    drill_annotations,
    expectation_from_intent,
    expectation_from_object,
)
from ecsm_actors.errors import (
    AlreadyExists,
    Conflict,
    Invalid,
    NotFound,
    RegistryError,
    Unavailable,
)

logger = logging.getLogger(__name__)

Mutation = Callable[[dict[str, Any]], None]
OnAck = Callable[[dict[str, Any] | None], None]


@dataclass(kw_only=True)
class Write:
    """One desired-state write. ``op`` is create, modify or delete; a modify applies
    ``mutate`` to the freshly read object."""

    op: str
    kind: str
    key: str
    manifest: dict[str, Any] | None = None
    mutate: Mutation | None = None
    hpa_owned: bool = False
    on_ack: OnAck | None = None
    label: str = ""
    attempts: int = 0
    not_before: float = 0.0
    first_try: float = field(default_factory=time.monotonic)

    @property
    def cache_key(self) -> str:
        return f"{self.kind}/{self.key}"


class DesiredStateWriter:
    def __init__(self, client: Any, ledger: Ledger, *, give_up_after: float = 120.0) -> None:
        self.client = client
        self.ledger = ledger
        self.give_up_after = give_up_after
        self._queues: dict[str, deque[Write]] = {}
        self._cache: dict[str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-writer", daemon=True)
        self.acknowledged = 0
        self.abandoned: list[str] = []
        self.registry_down_since: float | None = None

    # -- caller side -----------------------------------------------------------------

    def start(self) -> DesiredStateWriter:
        self._thread.start()
        return self

    def submit(self, write: Write) -> None:
        with self._cond:
            self._queues.setdefault(f"{write.kind}/{write.key}", deque()).append(write)
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._queues.values())

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify()
        self._thread.join(timeout=10)

    # -- writer thread ---------------------------------------------------------------

    def _heads(self) -> list[Write]:
        now = time.monotonic()
        with self._cond:
            heads = [q[0] for q in self._queues.values() if q and q[0].not_before <= now]
        return sorted(heads, key=lambda w: w.label != "canary")  # stable: canaries first

    def _done(self, write: Write) -> None:
        with self._cond:
            queue = self._queues.get(f"{write.kind}/{write.key}")
            if queue and queue[0] is write:
                queue.popleft()

    def _run(self) -> None:
        while not self._stop.is_set():
            heads = self._heads()
            if not heads:
                with self._cond:
                    self._cond.wait(timeout=0.05)
                continue
            for write in heads:
                if self._stop.is_set():
                    return
                try:
                    finished = self.attempt(write)
                except Unavailable as e:
                    self.registry_down_since = self.registry_down_since or time.monotonic()
                    logger.debug("registry unavailable (%s); %s retried later", e, write.label)
                    write.not_before = time.monotonic() + 0.1
                    break           # the registry is down: no point trying other keys now
                except RegistryError as e:
                    logger.warning("%s %s: %s; retried", write.op, write.key, e)
                    self._cache.pop(write.cache_key, None)
                    finished = False
                    write.not_before = time.monotonic() + 0.2
                self.registry_down_since = None
                if not finished and time.monotonic() - write.first_try > self.give_up_after:
                    self.abandoned.append(f"{write.op} {write.kind} {write.key}")
                    finished = True
                if finished:
                    self._done(write)

    def attempt(self, write: Write) -> bool:
        """One try; True when the write is settled (acknowledged or moot)."""
        write.attempts += 1
        try:
            if write.op == "create":
                return self._create(write)
            if write.op == "delete":
                return self._delete(write)
            return self._modify(write)
        except Unavailable:
            # The write may have landed: the next attempt must read the object afresh.
            self._cache.pop(write.cache_key, None)
            raise

    def _ack(self, write: Write, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            self.ledger.acknowledge(write.kind, write.key, DELETED)
            self._cache.pop(write.cache_key, None)
        else:
            self.ledger.acknowledge(write.kind, write.key,
                                    expectation_from_object(obj, hpa_owned=write.hpa_owned))
            self._cache[write.cache_key] = obj
        self.acknowledged += 1
        if write.on_ack is not None:
            write.on_ack(obj)
        return True

    def _get(self, write: Write) -> dict[str, Any] | None:
        namespace, name = write.key.split("/", 1)
        try:
            return self.client.get(write.kind, namespace, name)
        except NotFound:
            return None

    def _create(self, write: Write) -> bool:
        manifest = copy.deepcopy(write.manifest or {})
        self.ledger.intend(write.kind, write.key,
                           expectation_from_intent(manifest, hpa_owned=write.hpa_owned))
        try:
            return self._ack(write, self.client.create(manifest))
        except AlreadyExists:
            current = self._get(write)
            if current is None:
                return False
            if (current.get("metadata") or {}).get("deletionTimestamp"):
                write.not_before = time.monotonic() + 0.2   # the old one is still going
                return False
            if contains(_comparable(manifest, write), _comparable(current, write)):
                return self._ack(write, current)            # our earlier try landed
            # Someone else's object under our name: make it ours (OCC guards the race).
            desired = copy.deepcopy(current)
            desired["spec"] = manifest.get("spec")
            desired.pop("status", None)
            return self._ack(write, self.client.update(desired))
        except Invalid as e:
            logger.error("create %s refused: %s", write.key, e)
            self.ledger.refused(write.kind, write.key)
            self.abandoned.append(f"create {write.kind} {write.key}: {e}")
            return True

    def _delete(self, write: Write) -> bool:
        namespace, name = write.key.split("/", 1)
        self.ledger.intend(write.kind, write.key, DELETED)
        try:
            self.client.delete(write.kind, namespace, name)
        except NotFound:
            pass
        return self._ack(write, None)

    def _modify(self, write: Write) -> bool:
        for _ in range(8):
            current = self._cache.get(write.cache_key) or self._get(write)
            if current is None:
                self.abandoned.append(f"{write.label or 'modify'} {write.key}: object gone")
                return True
            desired = copy.deepcopy(current)
            assert write.mutate is not None
            write.mutate(desired)
            meta = desired.get("metadata") or {}
            if write.attempts > 1 and contains(_comparable(desired, write),
                                               _comparable(current, write)):
                return self._ack(write, current)            # an earlier try landed
            self.ledger.intend(write.kind, write.key,
                               expectation_from_intent(desired, hpa_owned=write.hpa_owned))
            desired.pop("status", None)
            meta.pop("deletionTimestamp", None)
            try:
                return self._ack(write, self.client.update(desired))
            except Invalid as e:
                logger.error("%s %s refused: %s", write.label or "modify", write.key, e)
                self.ledger.refused(write.kind, write.key)
                self.abandoned.append(f"{write.label or 'modify'} {write.kind} {write.key}: {e}")
                return True
            except Conflict:
                self._cache.pop(write.cache_key, None)
            except NotFound:
                self._cache.pop(write.cache_key, None)
                self.abandoned.append(f"{write.label or 'modify'} {write.key}: object gone")
                return True
        write.not_before = time.monotonic() + 0.1
        return False


def _comparable(obj: dict[str, Any], write: Write) -> dict[str, Any]:
    """The parts of an object a drill write sets: spec and the drill's annotations."""
    spec = copy.deepcopy(obj.get("spec") or {})
    if write.hpa_owned and write.kind == "ECSMService":
        (spec.get("deploymentStrategy") or {}).pop("replicas", None)
    return {"spec": spec, "annotations": drill_annotations(obj)}
