"""The event recorder: what controllers and the supervisor say happened to an object,
sent to the registry as ``Event`` records (client-go's EventRecorder and EventCorrelator
in spirit).

Runs in the controller processes and the supervisor. :meth:`EventRecorder.event` only
touches a few dicts under a lock: it never blocks on the registry and never raises, so a
controller never waits or fails because of an event. Occurrences are:

* aggregated: the repeats of one (object, type, reason, message) are one series whose
  count grows; a series is sent at most once per flush, as the occurrences since the last
  one (the registry adds them into one record: a flapping condition is one record);
* rate-limited per object: a new series of an object takes a token from the object's
  bucket (:data:`BURST` tokens, one more every :data:`REFILL` seconds, as client-go's
  spam filter); without one it is dropped and counted (repeats of a known series are
  always counted);
* bounded: at most :data:`MAX_SERIES` series remembered and :data:`MAX_PENDING` waiting
  to be sent; beyond, dropped and counted;
* sent by a flusher thread every ``flush_interval`` through a registry client of its own
  (short deadline); when the registry is slow or down the batch is dropped and counted,
  never retried later.

The thread starts on the first event, never at import nor construction (the zygote
imports this module and must start no thread); in a forked child it starts afresh.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ecsm_actors.api.event import MAX_WORD, NORMAL, WARNING, clip_message
from ecsm_actors.api.names import format_timestamp

logger = logging.getLogger(__name__)

#: New series one object may start at once, and the seconds to earn one more.
BURST = 25
REFILL = 30.0
#: Series remembered (the least recently seen forgotten first).
MAX_SERIES = 4096
#: Series waiting to be sent at most.
MAX_PENDING = 1000
#: Seconds between two flushes.
FLUSH_INTERVAL = 1.0

SeriesKey = tuple[str, str, str, str, str, str]


#: The keys of an ``involvedObject`` a series rebuilds from its key (and uid) when sent.
_REF_KEYS = frozenset({"kind", "namespace", "name", "uid"})


@dataclass(slots=True)
class _Series:
    """One remembered series, compact (thousands live as long as the process): the
    ``involvedObject`` is rebuilt from the series key and ``uid`` when sent; ``extra``
    holds its other keys, if any (none from :func:`involved_of` or :func:`object_ref`)."""

    uid: str | None
    extra: dict[str, str] | None
    first: float
    last: float
    pending: int = 0

    def involved(self, namespace: str, kind: str, name: str) -> dict[str, str]:
        ref = {"kind": kind, "namespace": namespace, "name": name}
        if self.uid is not None:
            ref["uid"] = self.uid
        if self.extra:
            ref.update(self.extra)
        return ref


def _word(value: Any) -> str:
    """``value`` as an interned string (namespaces, kinds, types, reasons: a few words
    repeated by thousands of series)."""
    return sys.intern(str(value))


def involved_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """The ``involvedObject`` of a wire object (kind, namespace, name, uid)."""
    meta = obj.get("metadata") or {}
    ref = {"kind": str(obj.get("kind", "")), "namespace": str(meta.get("namespace", "")),
           "name": str(meta.get("name", ""))}
    if meta.get("uid"):
        ref["uid"] = str(meta["uid"])
    return ref


def object_ref(kind: str, namespace: str, name: str) -> dict[str, str]:
    return {"kind": kind, "namespace": namespace, "name": name}


class EventRecorder:
    """Records events for ``component`` (see the module docstring). ``client_factory``
    makes the flusher's registry client (called in the flusher thread, once);
    ``autostart=False`` leaves flushing to the caller (:meth:`flush`)."""

    def __init__(self, component: str, client_factory: Callable[[], Any], *,
                 flush_interval: float = FLUSH_INTERVAL, burst: int = BURST,
                 refill: float = REFILL, autostart: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.component = component[:MAX_WORD]
        self.host = os.uname().nodename[:MAX_WORD]
        self.flush_interval = flush_interval
        self._factory = client_factory
        self._client: Any = None
        self._burst, self._refill = burst, refill
        self._autostart = autostart
        self._clock = clock
        self._lock = threading.Lock()
        #: Least recently seen first (a plain dict: re-inserted when seen again).
        self._series: dict[SeriesKey, _Series] = {}
        self._pending: dict[SeriesKey, _Series] = {}
        #: Object → (tokens, when), least recently used first; a bucket refilled since is
        #: the same as none, and is forgotten (:meth:`_forget_refilled`).
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stop = threading.Event()
        self.counts = {"recorded": 0, "aggregated": 0, "sent": 0, "droppedRateLimited": 0,
                       "droppedFull": 0, "droppedUnsent": 0}

    # -- the controller's side: never blocks, never raises ---------------------------

    def normal(self, involved: Mapping[str, Any], reason: str, message: str) -> None:
        self.event(involved, NORMAL, reason, message)

    def warning(self, involved: Mapping[str, Any], reason: str, message: str) -> None:
        self.event(involved, WARNING, reason, message)

    def event(self, involved: Mapping[str, Any], type_: str, reason: str,
              message: str) -> None:
        """Record one occurrence about ``involved`` (an ``involvedObject`` map, see
        :func:`involved_of`)."""
        try:
            self._event(involved, type_, reason, clip_message(str(message)))
        except Exception:  # noqa: BLE001 - an event never fails its caller
            logger.debug("event not recorded", exc_info=True)

    def _event(self, involved: Mapping[str, Any], type_: str, reason: str,
               message: str) -> None:
        now = self._clock()
        # the small vocabularies interned: one copy of each however many series name it
        obj = (_word(involved.get("namespace", "")), _word(involved.get("kind", "")),
               str(involved.get("name", "")))
        key: SeriesKey = (*obj, _word(type_), _word(reason), message)
        with self._lock:
            self.counts["recorded"] += 1
            series = self._series.pop(key, None)
            if series is not None:
                self._series[key] = series  # now the most recently seen
                self.counts["aggregated"] += 1
            elif not self._take_token(obj, now):
                self.counts["droppedRateLimited"] += 1
                return
            else:
                uid = involved.get("uid")
                extra = {k: str(v) for k, v in involved.items() if k not in _REF_KEYS}
                series = _Series(uid=None if uid is None else str(uid), extra=extra or None,
                                 first=now, last=now)
                self._series[key] = series
                while len(self._series) > MAX_SERIES:
                    old_key = next(iter(self._series))
                    del self._series[old_key]
                    self._pending.pop(old_key, None)
            if key not in self._pending:
                if len(self._pending) >= MAX_PENDING:
                    self.counts["droppedFull"] += 1
                    return
                self._pending[key] = series
            series.last = now
            series.pending += 1
        self._ensure_thread()

    def _take_token(self, obj: tuple[str, str, str], now: float) -> bool:
        tokens, at = self._buckets.pop(obj, (float(self._burst), now))
        tokens = min(float(self._burst), tokens + (now - at) / self._refill)
        ok = tokens >= 1.0
        self._buckets[obj] = (tokens - 1.0 if ok else tokens, now)
        while len(self._buckets) > MAX_SERIES:
            del self._buckets[next(iter(self._buckets))]
        self._forget_refilled(now)
        return ok

    def _forget_refilled(self, now: float) -> None:
        """Forget the buckets untouched long enough to be full again (a full bucket is
        what an object without one gets), least recently used first (under the lock)."""
        full_after = self._burst * self._refill
        stale: list[tuple[str, str, str]] = []
        for obj, (_, at) in self._buckets.items():
            if now - at < full_after:
                break
            stale.append(obj)
        for obj in stale:
            del self._buckets[obj]

    def _ensure_thread(self) -> None:
        if not self._autostart or (self._thread is not None and self._pid == os.getpid()):
            return
        with self._lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._client = None  # a client of the parent (before a fork) is not ours
            self._thread = threading.Thread(target=self._run, name="event-recorder",
                                            daemon=True)
            self._thread.start()

    # -- the flusher ---------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush()
        self.flush()

    def flush(self) -> int:
        """Send what is pending; return the occurrences sent (0 when they were dropped).
        Never raises."""
        with self._lock:
            self._forget_refilled(self._clock())
            pending, self._pending = self._pending, {}
            batch = []
            for (namespace, kind, name, type_, reason, message), s in pending.items():
                batch.append({"involvedObject": s.involved(namespace, kind, name),
                              "type": type_, "reason": reason,
                              "message": message, "count": s.pending,
                              "firstTimestamp": format_timestamp(s.first),
                              "lastTimestamp": format_timestamp(s.last),
                              "source": {"component": self.component, "host": self.host}})
                s.pending = 0
        if not batch:
            return 0
        occurrences = sum(e["count"] for e in batch)
        try:
            if self._client is None:
                self._client = self._factory()
            self._client.record_events(batch)
        except Exception as e:  # noqa: BLE001 - the flusher's boundary: drop, count, go on
            with self._lock:
                self.counts["droppedUnsent"] += occurrences
            logger.debug("%d events not sent: %s", occurrences, e)
            return 0
        with self._lock:
            self.counts["sent"] += occurrences
        return occurrences

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**self.counts, "pending": len(self._pending), "series": len(self._series),
                    "rateLimitedObjects": len(self._buckets)}

    def close(self, timeout: float = 1.0) -> None:
        """Stop the flusher after one last flush (waiting at most ``timeout``)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and self._pid == os.getpid():
            thread.join(timeout)
        client, self._client = self._client, None
        if client is not None and hasattr(client, "close"):
            try:
                client.close()
            except Exception:  # noqa: BLE001 - closing on the way out
                pass


class NoRecorder:
    """The recorder of a context built without one (tests, tools): events go nowhere."""

    def event(self, involved: Any, type_: str, reason: str, message: str) -> None:
        pass

    def normal(self, involved: Any, reason: str, message: str) -> None:
        pass

    def warning(self, involved: Any, reason: str, message: str) -> None:
        pass


NO_RECORDER = NoRecorder()


def recorder_of(ctx: Any) -> EventRecorder | NoRecorder:
    """The recorder of a reconcile context (none: one that drops everything)."""
    return getattr(ctx, "recorder", None) or NO_RECORDER


def registry_recorder(cfg: Any, component: str) -> EventRecorder:
    """A recorder whose flusher talks to the configured registry with a short deadline
    (an event is not worth waiting for)."""

    def client() -> Any:
        from ecsm_actors.registry.client import RegistryClient

        deadline = min(2.0, float(cfg.registry.request_timeout))
        return RegistryClient(cfg.registry_local_endpoint, timeout=deadline, deadline=deadline)

    return EventRecorder(component, client)
