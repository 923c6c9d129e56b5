"""The informer's sync state machine and version cache (see the package docstring for
the invariants). Runs in its own thread inside a controller process; every method but
:meth:`Informer.stop` and the read-only accessors is called from that thread only."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from ecsm_actors import protocol
from ecsm_actors.clock import Clock, RealClock
from ecsm_actors.config import ControllerSettings
from ecsm_actors.errors import BadRequest, Expired, RegistryError
from ecsm_actors.informer.ahead import FirstList
from ecsm_actors.informer.sources import EventHandler, EventSource, RegistryReader, VersionsLike

logger = logging.getLogger(__name__)


class _Relist(Exception):
    """Internal: abandon the current step and relist (cause in the message)."""


class Informer:
    """Watches one kind; see the module docstring. Drive it with :meth:`start` (its own
    thread) or, in tests, call :meth:`step` directly."""

    #: Longest single wait on the subscriber, so that :meth:`stop` is noticed promptly.
    MAX_WAIT = 1.0

    def __init__(
        self,
        kind: str,
        handler: EventHandler,
        *,
        registry_factory: Callable[[], RegistryReader],
        subscriber_factory: Callable[[], EventSource],
        settings: ControllerSettings,
        clock: Clock | None = None,
        on_synced: Callable[[], None] | None = None,
        first_list: FirstList | None = None,
    ) -> None:
        self.kind = kind
        #: The first LIST, sent ahead by the process (:mod:`.ahead`): its subscriber,
        #: client and reply are taken at the first step instead of made again.
        self._first = first_list
        self._prelisted: VersionsLike | None = None
        #: Called once, from the informer's thread, as soon as the first list is delivered.
        self._on_synced = on_synced
        self._handler = handler
        self._registry_factory = registry_factory
        self._subscriber_factory = subscriber_factory
        self._settings = settings
        self._clock: Clock = clock or RealClock()
        self._registry: RegistryReader | None = None
        self._subscriber: EventSource | None = None
        self._cache: dict[str, int] = {}
        self._mark = protocol.ChainMark(0)
        self._epoch: str | None = None
        self._pending: str | None = "initial list"  # why the next step must relist
        self._replay_cause: str | None = None
        self._synced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        now = self._clock.now()
        self._last_heard = now
        self._next_resync = now + settings.resync_period
        self._outage: str | None = None
        self._outage_attempts = 0
        self._counters = {"events": 0, "relists": 0, "replays": 0, "reconnects": 0,
                          "resyncs": 0, "drift": 0, "outages": 0}

    # -- public -------------------------------------------------------------------------

    def has_synced(self) -> bool:
        """True once the first list has been delivered to the handlers."""
        return self._synced.is_set()

    def wait_for_sync(self, timeout: float | None = None) -> bool:
        return self._synced.wait(timeout)

    def resource_version(self, key: str) -> int | None:
        return self._cache.get(key)

    def keys(self) -> list[str]:
        return list(self._cache)

    @property
    def watermark(self) -> int:
        """The highest ``seq`` delivered (events of every kind count)."""
        return self._mark.seq

    def stats(self) -> dict[str, Any]:
        return {**self._counters, "synced": self.has_synced(), "cached": len(self._cache),
                "resource_version": self._mark.seq}

    def start(self) -> Informer:
        self._thread = threading.Thread(target=self.run, name=f"informer-{self.kind}",
                                        daemon=True)
        self._thread.start()
        return self

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.MAX_WAIT + 1.0 if timeout is None else timeout)

    def run(self) -> None:
        try:
            while not self._stop.is_set():
                self.step()
        finally:
            if self._first is not None:
                self._first.close()
            self._close_registry()
            self._close_subscriber()

    # -- one iteration ------------------------------------------------------------------

    def step(self) -> None:
        """Recover if needed, then wait for and handle one message (or a deadline)."""
        try:
            if self._subscriber is None:
                if self._first is not None and not self._take_first():
                    return  # stopped while the first LIST was on its way
                if self._subscriber is None:
                    self._subscriber = self._subscriber_factory()
                self._last_heard = self._clock.now()
            self._recover()
            if self._settings.resync_period > 0 and self._clock.now() >= self._next_resync:
                self._resync()
            self._recovered()
            self._receive()
        except _Relist as e:
            self._pending = str(e)
        except RegistryError as e:
            self._on_outage(e)

    def _receive(self) -> None:
        assert self._subscriber is not None
        now = self._clock.now()
        wait = min(self.MAX_WAIT, max(0.0, self._last_heard + self._settings.watch_deadline - now))
        if self._settings.resync_period > 0:
            wait = min(wait, max(0.0, self._next_resync - now))
        try:
            message = self._subscriber.recv(wait)
        except BadRequest as e:  # a garbled message is a lost message
            self._replay_cause = f"undecodable event ({e})"
            return
        now = self._clock.now()
        if message is None:
            silent = now - self._last_heard
            if silent >= self._settings.watch_deadline:
                logger.warning("%s informer: no event or heartbeat for %.1fs; reconnecting and "
                               "replaying from resourceVersion %s", self.kind, silent, self._mark)
                self._counters["reconnects"] += 1
                self._close_subscriber()
                self._replay_cause = "reconnect"
            return
        self._last_heard = now
        if message.epoch != self._epoch:
            raise _Relist(f"new registry epoch {message.epoch} (was {self._epoch})")
        if isinstance(message, protocol.Heartbeat):
            if self._mark.behind(message.seq):
                self._replay_cause = (f"heartbeat at resourceVersion {message.seq}, last event "
                                      f"seen {self._mark}")
            return
        link = self._mark.link(message)
        if link is protocol.Link.DUPLICATE:
            return  # already delivered by a list or replay
        if link is protocol.Link.GAP:
            self._replay_cause = self._mark.describe_gap(message)
            return
        self._apply(message)

    # -- recovery -----------------------------------------------------------------------

    def _take_first(self) -> bool:
        """Take the subscriber, client and reply of the first LIST sent ahead, once it
        is answered (raises what it raised); False when stopped meanwhile."""
        first = self._first
        assert first is not None
        listed = None
        while listed is None and not first.done:
            if self._stop.is_set():
                return False
            listed = first.take(self.MAX_WAIT)
        listed = listed or first.take(0)
        self._first = None
        if listed is None:  # taken or closed elsewhere: list as without it
            return True
        self._subscriber, self._registry = listed.subscriber, listed.registry
        if listed.error is not None:
            raise listed.error
        self._prelisted = listed.result
        return True

    def _client(self) -> RegistryReader:
        if self._registry is None:
            self._registry = self._registry_factory()
        return self._registry

    def _recover(self) -> None:
        if self._pending is None and self._replay_cause is not None:
            try:
                self._replay(self._replay_cause)
            except _Relist as e:
                self._pending = str(e)
        if self._pending is not None:
            self._relist(self._pending)

    def _relist(self, cause: str) -> None:
        if self._synced.is_set():
            logger.warning("%s informer: relisting: %s", self.kind, cause)
        result, self._prelisted = self._prelisted, None
        if result is None:
            result = self._client().list_versions(self.kind)
        epoch_changed = self._epoch is not None and result.epoch != self._epoch
        fresh = dict(result.versions)
        add_all = getattr(self._handler, "on_add_all", None)
        if not self._cache and add_all is not None:  # every key is new: one call
            self._cache = fresh
            add_all(list(fresh.items()))
        else:
            for key in [k for k in self._cache if k not in fresh]:
                self._handler.on_delete(key, self._cache.pop(key))
            for key, rv in fresh.items():
                old = self._cache.get(key)
                self._cache[key] = rv
                if old is None:
                    self._handler.on_add(key, rv)
                elif old != rv or epoch_changed:
                    self._handler.on_update(key, rv)
        self._epoch = result.epoch
        self._mark = protocol.ChainMark(int(result.resource_version))
        self._pending = None
        self._replay_cause = None
        self._last_heard = self._clock.now()
        self._counters["relists"] += 1
        if not self._synced.is_set():
            self._synced.set()
            if self._on_synced is not None:
                self._on_synced()

    def _replay(self, cause: str) -> None:
        if cause != "reconnect":  # the reconnect was logged when it happened
            logger.warning("%s informer: replaying from resourceVersion %s: %s",
                           self.kind, self._mark, cause)
        events, upto = self._fetch_since()
        for event in events:
            self._apply(event)
        self._mark = self._mark.complete_to(upto)
        self._replay_cause = None
        self._last_heard = self._clock.now()
        self._counters["replays"] += 1

    def _fetch_since(self) -> tuple[list[protocol.Event], int]:
        """The events after the watermark in order, and the version they are complete up
        to (raises _Relist on Expired, a new epoch or a replay that breaks the chain)."""
        mark = self._mark
        since = mark.replay_from
        try:
            result = self._client().watch_since(since)
        except Expired as e:
            raise _Relist(f"resourceVersion {since} expired from the event log ({e})") from e
        if result.epoch != self._epoch:
            raise _Relist(f"new registry epoch {result.epoch} (was {self._epoch})")
        events = []
        for event in result.events:
            link = mark.link(event)
            if link is protocol.Link.DUPLICATE:
                continue
            if link is protocol.Link.GAP:
                raise _Relist(f"replay has a {mark.describe_gap(event)}")
            events.append(event)
            mark = mark.after(event)
        return events, int(result.resource_version)

    def _on_outage(self, error: RegistryError) -> None:
        if self._outage is None:
            logger.warning("%s informer: registry unavailable (%s); retrying with backoff",
                           self.kind, error)
            self._counters["outages"] += 1
        self._outage = str(error)
        self._close_registry()  # a REQ socket that timed out is unusable
        if self._pending is None and self._replay_cause is None:
            self._replay_cause = "registry was unavailable"
        delay = min(self._settings.watch_retry_cap,
                    self._settings.backoff_base * 2.0 ** min(self._outage_attempts, 32))
        self._outage_attempts += 1
        self._clock.sleep(self._stop, delay)

    def _recovered(self) -> None:
        if self._outage is not None:
            logger.info("%s informer: registry reachable again after %d attempts",
                        self.kind, self._outage_attempts)
        self._outage = None
        self._outage_attempts = 0

    # -- resync -------------------------------------------------------------------------

    def _resync(self) -> None:
        self._next_resync = self._clock.now() + self._settings.resync_period
        result = self._client().list_versions(self.kind)
        if result.epoch != self._epoch:
            raise _Relist(f"new registry epoch {result.epoch} (was {self._epoch})")
        listed_at = int(result.resource_version)
        later: list[protocol.Event] = []
        upto = self._mark.seq
        if self._mark.behind(listed_at):
            # Catch up exactly to the list's point in time, so the comparison is exact;
            # what happened after it is delivered once the comparison is done.
            events, upto = self._fetch_since()
            for event in events:
                if event.seq <= listed_at:
                    self._apply(event)
                else:
                    later.append(event)
            if upto >= listed_at:
                self._mark = self._mark.complete_to(listed_at)
        if self._mark.seq == listed_at and self._mark.finished:
            self._compare(dict(result.versions))
        else:  # a list older than what we saw (a registry answering out of order), or a
            # replay cut short of it
            logger.warning("%s informer: resync list at resourceVersion %d does not match "
                           "the watermark %s; comparison skipped", self.kind, listed_at,
                           self._mark)
        self._counters["resyncs"] += 1
        for key, rv in list(self._cache.items()):
            self._handler.on_resync(key, rv)
        for event in later:
            self._apply(event)
        self._mark = self._mark.complete_to(upto)

    def _compare(self, fresh: dict[str, int]) -> None:
        drift = 0
        for key in [k for k in self._cache if k not in fresh]:
            drift += 1
            self._handler.on_delete(key, self._cache.pop(key))
        for key, rv in fresh.items():
            old = self._cache.get(key)
            if old != rv:
                drift += 1
                self._cache[key] = rv
                if old is None:
                    self._handler.on_add(key, rv)
                else:
                    self._handler.on_update(key, rv)
        if drift:
            self._counters["drift"] += drift
            logger.error("%s informer: resync found %d object(s) whose version differs from "
                         "the event stream: events were lost undetected", self.kind, drift)

    # -- delivery -----------------------------------------------------------------------

    def _apply(self, event: protocol.EventHead) -> None:
        self._mark = self._mark.after(event)
        self._counters["events"] += 1
        if event.kind != self.kind:
            return
        if event.type == protocol.EventType.DELETED:
            self._cache.pop(event.key, None)
            self._handler.on_delete(event.key, event.resource_version)
            return
        old = self._cache.get(event.key)
        self._cache[event.key] = event.resource_version
        if old is None:
            self._handler.on_add(event.key, event.resource_version)
        else:
            self._handler.on_update(event.key, event.resource_version)

    def _close_registry(self) -> None:
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    def _close_subscriber(self) -> None:
        if self._subscriber is not None:
            self._subscriber.close()
            self._subscriber = None
