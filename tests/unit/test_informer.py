"""The informer against a fake registry and a fake subscriber: list/diff, gap → replay,
Expired → relist, new epoch → relist, silence → reconnect, outage → retry, resync drift.
Fake clock, no sockets, no threads: each test drives ``Informer.step()``."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from ecsm_actors import protocol
from ecsm_actors.clock import FakeClock
from ecsm_actors.config import ControllerSettings
from ecsm_actors.errors import Expired, Unavailable
from ecsm_actors.informer import Informer
from ecsm_actors.protocol import Event, EventType, Heartbeat
from tests.helpers import RecordingHandler

KIND = "ECSMService"
OTHER = "ECSMHpa"


@dataclass
class Listed:
    versions: list[tuple[str, int]]
    resource_version: int
    epoch: str


@dataclass
class Replayed:
    events: list[Event]
    resource_version: int
    epoch: str


@dataclass
class FakeRegistry:
    """Objects, a global gap-free resourceVersion, an event log, an epoch; every commit is
    published to the subscriber unless the test drops it."""

    clock: FakeClock
    epoch: str = "epoch-1"
    rv: int = 0
    objects: dict[tuple[str, str], int] = field(default_factory=dict)
    log: list[Event] = field(default_factory=list)
    compacted: int = 0
    down: bool = False
    inbox: deque[Any] = field(default_factory=deque)  # what the subscriber will deliver
    calls: list[str] = field(default_factory=list)

    # -- mutations (the test's writes) --
    def commit(self, kind: str, name: str, type_: EventType = EventType.MODIFIED,
               publish: bool = True) -> Event:
        self.rv += 1
        key = f"default/{name}"
        if type_ is EventType.DELETED:
            self.objects.pop((kind, key), None)
        else:
            if (kind, key) not in self.objects:
                type_ = EventType.ADDED
            self.objects[(kind, key)] = self.rv
        event = Event(epoch=self.epoch, seq=self.rv, type=type_, kind=kind, key=key,
                      resource_version=self.rv, object=None)
        self.log.append(event)
        if publish:
            self.inbox.append(event)
        return event

    def heartbeat(self) -> None:
        self.inbox.append(Heartbeat(epoch=self.epoch, seq=self.rv))

    def wipe(self) -> None:
        self.epoch, self.rv, self.objects, self.log, self.compacted = "epoch-2", 0, {}, [], 0

    # -- RegistryReader --
    def list_versions(self, kind: str, namespace: str | None = None) -> Listed:
        self.calls.append("list")
        if self.down:
            raise Unavailable("registry did not answer")
        versions = [(k, rv) for (kd, k), rv in self.objects.items() if kd == kind]
        return Listed(versions=versions, resource_version=self.rv, epoch=self.epoch)

    def watch_since(self, resource_version: int) -> Replayed:
        self.calls.append(f"watch_since {resource_version}")
        if self.down:
            raise Unavailable("registry did not answer")
        if resource_version < self.compacted or resource_version > self.rv:
            raise Expired(f"resourceVersion {resource_version} is not in the event log")
        return Replayed(events=[e for e in self.log if e.seq > resource_version],
                        resource_version=self.rv, epoch=self.epoch)

    def close(self) -> None:
        pass


class FakeSubscriber:
    def __init__(self, registry: FakeRegistry, clock: FakeClock) -> None:
        self.registry = registry
        self.clock = clock
        self.closed = False

    def recv(self, timeout: float | None) -> Any:
        if self.registry.inbox:
            return self.registry.inbox.popleft()
        self.clock.advance(timeout or 0.0)
        return None

    def close(self) -> None:
        self.closed = True


class World:
    def __init__(self, **settings: Any) -> None:
        self.clock = FakeClock()
        self.registry = FakeRegistry(self.clock)
        self.handler = RecordingHandler()
        self.subscribers: list[FakeSubscriber] = []
        self.subscribed_at: list[float] = []
        defaults = {"watch_deadline": 5.0, "resync_period": 0.0, "backoff_base": 0.05,
                    "watch_retry_cap": 2.0}
        self.settings = ControllerSettings(**{**defaults, **settings})
        self.make_informer()

    def make_informer(self, on_synced: Callable[[], None] | None = None) -> Informer:
        self.informer = Informer(
            KIND, self.handler, registry_factory=lambda: self.registry,
            subscriber_factory=self._subscribe, settings=self.settings, clock=self.clock,
            on_synced=on_synced)
        return self.informer

    def _subscribe(self) -> FakeSubscriber:
        self.registry.calls.append("subscribe")
        self.subscribed_at.append(self.clock.now())
        sub = FakeSubscriber(self.registry, self.clock)
        self.subscribers.append(sub)
        return sub

    def pump(self, steps: int = 20) -> None:
        """Run the informer until the subscriber has nothing left (plus one idle wait)."""
        for _ in range(steps):
            self.informer.step()
            if not self.registry.inbox:
                self.informer.step()
                return


def test_it_subscribes_before_it_lists_and_reports_synced_after_the_first_list() -> None:
    w = World()
    w.registry.commit(KIND, "a")
    w.registry.commit(KIND, "b")
    assert not w.informer.has_synced()
    w.registry.inbox.clear()
    w.informer.step()
    assert w.registry.calls[:2] == ["subscribe", "list"]
    assert w.informer.has_synced()
    assert w.handler.take() == [("add", "default/a", 1), ("add", "default/b", 2)]


def test_events_become_add_update_and_delete_calls_with_their_versions() -> None:
    w = World()
    w.informer.step()
    w.registry.commit(KIND, "a")
    w.registry.commit(KIND, "a")
    w.registry.commit(KIND, "a", EventType.DELETED)
    w.pump()
    assert w.handler.take() == [("add", "default/a", 1), ("update", "default/a", 2),
                                ("delete", "default/a", 3)]
    assert w.informer.resource_version("default/a") is None


def test_events_of_other_kinds_advance_the_watermark_without_a_call() -> None:
    w = World()
    w.informer.step()
    w.registry.commit(OTHER, "h")
    w.registry.commit(KIND, "a")
    w.pump()
    assert w.handler.take() == [("add", "default/a", 2)]
    assert w.informer.watermark == 2
    assert "watch_since 0" not in w.registry.calls  # no gap was seen


def test_events_already_covered_by_the_list_are_ignored() -> None:
    w = World()
    w.registry.commit(KIND, "a")  # in the inbox AND in the list
    w.pump()
    assert w.handler.take() == [("add", "default/a", 1)]


def test_a_gap_in_seq_is_replayed_from_the_event_log_in_order(
        caplog: pytest.LogCaptureFixture) -> None:
    w = World()
    w.informer.step()
    w.registry.commit(KIND, "a")
    w.registry.commit(KIND, "b", publish=False)  # lost on the wire
    w.registry.commit(OTHER, "h", publish=False)
    w.registry.commit(KIND, "a")
    with caplog.at_level(logging.WARNING):
        w.pump()
    assert w.handler.take() == [("add", "default/a", 1), ("add", "default/b", 2),
                                ("update", "default/a", 4)]
    assert "watch_since 1" in w.registry.calls
    assert [r.message for r in caplog.records if "gap in events" in r.message]


def test_a_heartbeat_ahead_of_the_watermark_reveals_lost_trailing_events() -> None:
    w = World()
    w.informer.step()
    w.registry.commit(KIND, "a", publish=False)
    w.registry.heartbeat()
    w.pump()
    assert w.handler.take() == [("add", "default/a", 1)]


def test_an_expired_watermark_relists_and_deletes_what_vanished() -> None:
    w = World()
    w.registry.commit(KIND, "gone")
    w.registry.commit(KIND, "kept")
    w.pump()
    w.handler.take()
    w.registry.commit(KIND, "gone", EventType.DELETED, publish=False)
    w.registry.commit(KIND, "new", publish=False)
    w.registry.compacted = w.registry.rv  # the log no longer holds what we missed
    w.registry.heartbeat()
    w.pump()
    assert sorted(w.handler.take()) == [("add", "default/new", 4), ("delete", "default/gone", 1)]
    assert w.registry.calls.count("list") == 2


def test_a_new_epoch_relists_from_scratch(caplog: pytest.LogCaptureFixture) -> None:
    w = World()
    w.registry.commit(KIND, "a")
    w.registry.commit(KIND, "b")
    w.pump()
    w.handler.take()
    w.registry.wipe()
    w.registry.commit(KIND, "a", publish=False)  # same key, a version seen before
    w.registry.heartbeat()
    with caplog.at_level(logging.WARNING):
        w.pump()
    assert sorted(w.handler.take()) == [("delete", "default/b", 2), ("update", "default/a", 1)]
    assert w.informer.watermark == 1
    assert [r for r in caplog.records if "new registry epoch" in r.message]


def test_a_new_epoch_in_an_event_relists_too() -> None:
    w = World()
    w.pump()
    w.registry.wipe()
    w.registry.commit(KIND, "x")
    w.pump()
    assert w.handler.take() == [("add", "default/x", 1)]
    assert w.registry.calls.count("list") == 2


def test_silence_past_the_deadline_reconnects_and_replays(
        caplog: pytest.LogCaptureFixture) -> None:
    w = World(watch_deadline=5.0)
    w.informer.step()
    w.registry.commit(KIND, "a", publish=False)
    with caplog.at_level(logging.WARNING):
        for _ in range(10):
            w.informer.step()
            if len(w.subscribers) == 2:
                break
    assert w.subscribed_at[1] - w.subscribed_at[0] == pytest.approx(5.0)
    assert w.subscribers[0].closed and len(w.subscribers) == 2
    assert w.handler.take() == [("add", "default/a", 1)]
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "no event or heartbeat" in warnings[0]


def test_heartbeats_keep_a_quiet_stream_alive() -> None:
    w = World(watch_deadline=5.0)
    w.informer.step()
    for _ in range(6):
        w.clock.advance(3.0)
        w.registry.heartbeat()
        w.informer.step()
    assert len(w.subscribers) == 1


def test_a_registry_that_is_down_is_retried_with_capped_backoff_until_it_answers(
        caplog: pytest.LogCaptureFixture) -> None:
    w = World(backoff_base=0.05, watch_retry_cap=2.0)
    w.registry.down = True
    start = w.clock.now()
    caplog.set_level(logging.INFO)
    for _ in range(12):
        w.informer.step()
    waited = w.clock.now() - start
    assert not w.informer.has_synced()
    # 0.05, 0.1, 0.2, ..., then capped at 2.0
    assert waited == pytest.approx(0.05 + 0.1 + 0.2 + 0.4 + 0.8 + 1.6 + 2.0 * 6)
    w.registry.down = False
    w.registry.commit(KIND, "a", publish=False)
    w.informer.step()
    assert w.informer.has_synced()
    assert w.handler.take() == [("add", "default/a", 1)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "registry unavailable" in warnings[0].message
    assert [r for r in caplog.records if "reachable again" in r.message]


def test_an_outage_after_sync_replays_what_happened_meanwhile() -> None:
    w = World()
    w.informer.step()
    w.registry.down = True
    w.registry.commit(KIND, "a", publish=False)
    w.clock.advance(5.0)
    w.informer.step()  # silence → reconnect
    w.informer.step()  # replay fails: registry down
    w.registry.down = False
    w.pump()
    assert w.handler.take() == [("add", "default/a", 1)]


def test_resync_announces_every_key_at_low_priority_without_drift() -> None:
    w = World(resync_period=60.0)
    w.registry.commit(KIND, "a")
    w.registry.commit(KIND, "b")
    w.pump()
    w.handler.take()
    w.clock.advance(60.0)
    w.informer.step()
    assert sorted(w.handler.take()) == [("resync", "default/a", 1), ("resync", "default/b", 2)]
    assert w.informer.stats()["drift"] == 0


def test_resync_with_events_still_in_flight_reports_no_false_drift() -> None:
    w = World(resync_period=60.0)
    w.registry.commit(KIND, "a")
    w.pump()
    w.handler.take()
    w.registry.commit(KIND, "a")  # published, not yet received when the resync lists
    w.registry.commit(KIND, "b")
    w.clock.advance(60.0)
    w.informer.step()
    calls = w.handler.take()
    assert calls[:2] == [("update", "default/a", 2), ("add", "default/b", 3)]
    assert sorted(calls[2:]) == [("resync", "default/a", 2), ("resync", "default/b", 3)]
    assert w.informer.stats()["drift"] == 0
    w.pump()
    assert w.handler.take() == []  # the in-flight copies are recognised as old


def test_resync_repairs_and_reports_drift_that_gap_detection_missed(
        caplog: pytest.LogCaptureFixture) -> None:
    w = World(resync_period=60.0)
    w.registry.commit(KIND, "a")
    w.registry.commit(KIND, "b")
    w.pump()
    w.handler.take()
    # A corrupted stream: the registry state moved without any event.
    w.registry.objects[(KIND, "default/a")] = 2
    del w.registry.objects[(KIND, "default/b")]
    w.registry.objects[(KIND, "default/c")] = 2
    w.clock.advance(60.0)
    with caplog.at_level(logging.ERROR):
        w.informer.step()
    calls = w.handler.take()
    assert sorted(c for c in calls if c[0] != "resync") == [
        ("add", "default/c", 2), ("delete", "default/b", 2), ("update", "default/a", 2)]
    assert w.informer.stats()["drift"] == 3
    assert [r for r in caplog.records if r.levelno == logging.ERROR and "3 object(s)" in r.message]


def test_the_version_cache_holds_only_keys_and_versions() -> None:
    w = World()
    w.registry.commit(KIND, "a")
    w.registry.commit(OTHER, "h")
    w.pump()
    assert w.informer.keys() == ["default/a"]
    assert w.informer.resource_version("default/a") == 1
    assert protocol.object_key("default", "a") == "default/a"


class BulkHandler(RecordingHandler):
    """A handler that also takes a first list's keys in one call."""

    def on_add_all(self, items: list[tuple[str, int]]) -> None:
        self.calls.append(("add_all", len(items), sorted(items)))


def test_a_first_list_goes_in_one_call_to_a_handler_that_takes_them_all() -> None:
    w = World()
    w.handler = BulkHandler()
    w.make_informer()
    w.registry.commit(KIND, "a", publish=False)
    w.registry.commit(KIND, "b", publish=False)
    w.informer.step()
    assert w.informer.has_synced() and w.informer.keys() == ["default/a", "default/b"]
    assert w.handler.take() == [("add_all", 2, [("default/a", 1), ("default/b", 2)])]
    w.registry.wipe()
    w.registry.commit(KIND, "d")
    w.pump()  # a relist over a cache that is not empty: key by key
    assert [c[0] for c in w.handler.take()] == ["delete", "delete", "add"]


def test_the_first_sync_is_announced_once_right_after_the_first_list_is_delivered() -> None:
    w = World()
    announced: list[list[tuple[str, str, int]]] = []
    w.make_informer(on_synced=lambda: announced.append(w.handler.take()))
    w.registry.commit(KIND, "a", publish=False)
    w.informer.step()
    assert announced == [[("add", "default/a", 1)]]  # delivered before it is announced
    w.registry.wipe()
    w.registry.commit(KIND, "b")
    w.pump()  # a relist later is no first sync
    assert len(announced) == 1
