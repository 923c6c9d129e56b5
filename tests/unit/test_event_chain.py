"""The event chain (``prev``, ``index``, ``last`` on every watch event): its wire form, the
gap rules of :class:`~ecsm_actors.protocol.ChainMark`, and the informer and the ``watch``
engine on a store whose revisions are not contiguous (as etcd's: other keys take
revisions between the events, and an atomic BATCH is several events of one revision).
Fakes only: no sockets, no threads."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.cli.watching import Watch, WatchOptions
from ecsm_actors.clock import FakeClock
from ecsm_actors.config import ControllerSettings
from ecsm_actors.errors import BadRequest
from ecsm_actors.informer import Informer
from ecsm_actors.protocol import ChainMark, Event, EventType, Heartbeat, Link
from ecsm_actors.registry.client import WatchResult
from tests.helpers import RecordingHandler

pytestmark = pytest.mark.timeout(10)

KIND = "ECSMService"


def event(seq: int, prev: int, index: int = 0, last: bool = True, name: str = "a",
          epoch: str = "e1") -> Event:
    return Event(epoch=epoch, seq=seq, prev=prev, index=index, last=last,
                 type=EventType.MODIFIED, kind=KIND, key=f"default/{name}",
                 resource_version=seq, object=None)


# -- the wire form ------------------------------------------------------------------------


def test_an_lmdb_event_body_links_to_the_version_before_it() -> None:
    body = protocol.encode_event_body("e1", EventType.ADDED, KIND, "d/a", 7, protocol.pack({}))
    doc = msgpack.unpackb(body)
    assert (doc["prev"], doc["index"], doc["last"]) == (6, 0, True)
    assert Event.from_wire(doc) == Event(epoch="e1", seq=7, type=EventType.ADDED, kind=KIND,
                                         key="d/a", resource_version=7, object={})


def test_a_link_round_trips_and_an_older_registrys_event_gets_the_defaults() -> None:
    linked = event(40, prev=31, index=2, last=False)
    assert Event.from_wire(linked.to_wire()) == linked
    older = {k: v for k, v in linked.to_wire().items() if k not in ("prev", "index", "last")}
    decoded = Event.from_wire(older)
    assert (decoded.prev, decoded.index, decoded.last) == (39, 0, True)


@pytest.mark.parametrize("change", [{"prev": 40}, {"prev": -1}, {"index": -1},
                                    {"last": 1}, {"prev": True}, {"index": "0"}],
                         ids=["prev-not-before", "prev-negative", "index-negative",
                              "last-int", "prev-bool", "index-string"])
def test_a_broken_link_is_a_bad_request(change: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        Event.from_wire({**event(40, prev=31).to_wire(), **change})


# -- the gap rules ------------------------------------------------------------------------


@pytest.mark.parametrize(("mark", "seq", "prev", "index", "last", "expected"), [
    (ChainMark(10), 12, 10, 0, True, Link.NEXT),
    (ChainMark(10), 12, 7, 0, True, Link.NEXT),  # listed at 10, nothing of ours since 7
    (ChainMark(10), 12, 11, 0, True, Link.GAP),  # the event at 11 was lost
    (ChainMark(10), 12, 10, 1, True, Link.GAP),  # the first of revision 12 was lost
    (ChainMark(10), 10, 8, 0, True, Link.DUPLICATE),
    (ChainMark(10), 9, 8, 0, True, Link.DUPLICATE),
    (ChainMark(10, 0, False, 8), 10, 8, 1, True, Link.NEXT),
    (ChainMark(10, 0, False, 8), 10, 8, 0, False, Link.DUPLICATE),
    (ChainMark(10, 0, False, 8), 10, 8, 2, True, Link.GAP),  # the middle one was lost
    (ChainMark(10, 0, False, 8), 12, 10, 0, True, Link.GAP),  # the last one was lost
], ids=["next", "prev-older-than-the-mark", "lost-between", "lost-first-of-a-revision",
        "same-revision-finished", "older", "next-of-a-revision", "same-index-again",
        "lost-middle", "lost-last"])
def test_the_gap_rules(mark: ChainMark, seq: int, prev: int, index: int, last: bool,
                       expected: Link) -> None:
    assert mark.link(event(seq, prev, index, last)) is expected


def test_a_heartbeat_reveals_a_later_revision_or_the_lost_end_of_the_current_one() -> None:
    assert ChainMark(10).behind(12) and not ChainMark(10).behind(10)
    assert not ChainMark(10).behind(9)
    assert ChainMark(10, 1, False, 8).behind(10)
    assert ChainMark(10, 1, False, 8).replay_from == 8 and ChainMark(10).replay_from == 10


# -- an etcd-like registry -----------------------------------------------------------------


@dataclass
class Registry:
    """Revisions shared with keys that are no objects (a write's request record, another
    program's keys): the events' versions skip, and a BATCH is one revision of several
    events. Every event is published unless the test drops it."""

    epoch: str = "e1"
    revision: int = 100
    log: list[Event] = field(default_factory=list)
    objects: dict[str, int] = field(default_factory=dict)
    inbox: deque[Any] = field(default_factory=deque)
    calls: list[str] = field(default_factory=list)
    last_event: int = 100

    def other_keys(self, n: int = 3) -> None:
        self.revision += n

    def batch(self, *names: str, drop: tuple[int, ...] = ()) -> list[Event]:
        """One revision writing ``names``; the events at ``drop`` are lost on the wire."""
        self.revision += 1
        events = [Event(epoch=self.epoch, seq=self.revision, prev=self.last_event, index=i,
                        last=i == len(names) - 1, type=EventType.MODIFIED, kind=KIND,
                        key=f"default/{n}", resource_version=self.revision, object=None)
                  for i, n in enumerate(names)]
        self.last_event = self.revision
        for i, e in enumerate(events):
            self.objects[e.key] = e.seq
            self.log.append(e)
            if i not in drop:
                self.inbox.append(e)
        return events

    def heartbeat(self) -> None:
        self.inbox.append(Heartbeat(epoch=self.epoch, seq=self.last_event))

    # RegistryReader / ReplaySource
    def list_versions(self, kind: str, namespace: str | None = None) -> Any:
        self.calls.append("list")
        return _Listed(versions=list(self.objects.items()), resource_version=self.revision,
                       epoch=self.epoch)

    def watch_since(self, resource_version: int) -> WatchResult:
        self.calls.append(f"watch_since {resource_version}")
        return WatchResult(events=[e for e in self.log if e.seq > resource_version],
                           resource_version=self.revision, epoch=self.epoch)

    def ping(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "resourceVersion": self.revision}

    def close(self) -> None:
        pass


@dataclass
class _Listed:
    versions: list[tuple[str, int]]
    resource_version: int
    epoch: str


class Inbox:
    def __init__(self, registry: Registry, clock: FakeClock | None = None) -> None:
        self.registry, self.clock = registry, clock

    def recv(self, timeout: float | None) -> Any:
        if self.registry.inbox:
            return self.registry.inbox.popleft()
        if self.clock is not None:
            self.clock.advance(timeout or 0.0)
        return None

    def close(self) -> None:
        pass


class InformerWorld:
    def __init__(self, **settings: Any) -> None:
        self.clock = FakeClock()
        self.registry = Registry()
        self.handler = RecordingHandler()
        defaults = {"watch_deadline": 5.0, "resync_period": 0.0}
        self.informer = Informer(KIND, self.handler, registry_factory=lambda: self.registry,
                                 subscriber_factory=lambda: Inbox(self.registry, self.clock),
                                 settings=ControllerSettings(**{**defaults, **settings}),
                                 clock=self.clock)
        self.informer.step()  # subscribe and list
        self.registry.calls.clear()

    def pump(self) -> list[tuple[str, str, int]]:
        """Run until the inbox is drained and the informer has nothing left to recover."""
        for _ in range(50):
            self.informer.step()
            if not self.registry.inbox:
                break
        self.informer.step()
        calls, self.handler.calls = self.handler.calls, []
        return calls

    @property
    def replays(self) -> list[str]:
        return [c for c in self.registry.calls if c.startswith("watch_since")]


def test_the_informer_delivers_events_sharing_one_revision_once_each_without_a_replay() -> None:
    w = InformerWorld()
    r = w.registry
    r.other_keys()
    r.batch("a", "b", "c")
    r.other_keys()
    r.batch("a")
    assert w.pump() == [("add", "default/a", 104), ("add", "default/b", 104),
                        ("add", "default/c", 104), ("update", "default/a", 108)]
    assert w.replays == []
    assert w.informer.watermark == 108


def test_the_informer_replays_a_lost_middle_event_of_a_revision() -> None:
    w = InformerWorld()
    w.registry.batch("a", "b", "c", drop=(1,))
    assert w.pump() == [("add", "default/a", 101), ("add", "default/b", 101),
                        ("add", "default/c", 101)]
    assert w.replays == ["watch_since 100"]  # the revision before the unfinished one


def test_the_informer_replays_a_lost_last_event_revealed_by_the_next_revision() -> None:
    w = InformerWorld()
    w.registry.batch("a", "b", drop=(1,))
    w.registry.other_keys()
    w.registry.batch("c")
    assert w.pump() == [("add", "default/a", 101), ("add", "default/b", 101),
                        ("add", "default/c", 105)]
    assert len(w.replays) == 1 and "list" not in w.registry.calls


def test_the_informer_replays_a_lost_last_event_revealed_by_a_heartbeat() -> None:
    w = InformerWorld()
    w.registry.batch("a", "b", drop=(1,))
    w.registry.heartbeat()
    assert w.pump() == [("add", "default/a", 101), ("add", "default/b", 101)]
    assert len(w.replays) == 1


def test_the_informer_replays_a_lost_revision_revealed_by_prev() -> None:
    w = InformerWorld()
    w.registry.batch("a", drop=(0,))
    w.registry.other_keys()
    w.registry.batch("b")
    assert w.pump() == [("add", "default/a", 101), ("add", "default/b", 105)]
    assert w.replays == ["watch_since 100"] and "list" not in w.registry.calls


def test_a_heartbeat_ahead_replays_once_and_the_watermark_then_covers_other_keys() -> None:
    w = InformerWorld()
    w.registry.batch("a", drop=(0,))
    w.registry.other_keys()  # the store's version moves past the last event
    w.registry.heartbeat()
    assert w.pump() == [("add", "default/a", 101)]
    assert w.informer.watermark == 104  # complete up to the replay's version
    w.registry.heartbeat()
    w.registry.batch("b")
    assert w.pump() == [("add", "default/b", 105)]
    assert len(w.replays) == 1


def test_a_replay_that_breaks_the_chain_relists() -> None:
    w = InformerWorld()
    w.registry.batch("a", drop=(0,))
    w.registry.batch("b", "c")
    del w.registry.log[1]  # the registry's replay lost "b"
    assert sorted(w.pump()) == [("add", "default/a", 101), ("add", "default/b", 102),
                                ("add", "default/c", 102)]
    assert w.registry.calls.count("list") == 1


def test_a_resync_after_other_keys_moved_the_version_compares_without_drift() -> None:
    w = InformerWorld(resync_period=60.0)
    w.registry.batch("a")
    w.pump()
    w.registry.other_keys()
    w.clock.advance(60.0)
    calls = w.pump()
    assert calls == [("resync", "default/a", 101)]
    assert w.informer.stats()["resyncs"] == 1 and w.informer.stats()["drift"] == 0
    assert w.informer.watermark == 104


# -- ecsm-cli watch ------------------------------------------------------------------------


def watch_world(registry: Registry, count: int,
                since: int | None = None) -> list[tuple[int, str]]:
    shown: list[tuple[int, str]] = []
    clock = FakeClock()

    class Clock:
        @staticmethod
        def monotonic() -> float:
            return clock.now()

    engine = Watch(registry, lambda: Inbox(registry, clock),
                   WatchOptions(kind=KIND, namespace="default", count=count, timeout=30.0,
                                since=since),
                   emit=lambda e: shown.append((e.seq, e.key)), notice=lambda _: None,
                   clock=Clock())
    engine.run()
    shown.append((engine.last or 0, "stopped after"))
    return shown


def test_watch_shows_each_event_of_a_revision_once_without_a_replay() -> None:
    r = Registry()
    r.other_keys()
    r.batch("a", "b")
    r.other_keys()
    r.batch("c")
    shown = watch_world(_started_at(r, 100), count=3)
    assert shown == [(104, "default/a"), (104, "default/b"), (108, "default/c"),
                     (108, "stopped after")]
    assert [c for c in r.calls if c.startswith("watch_since")] == []


def test_watch_replays_a_lost_middle_event_and_a_lost_last_one() -> None:
    r = Registry()
    r.batch("a", "b", "c", drop=(1,))
    r.batch("d", "e", drop=(1,))
    r.other_keys()
    r.batch("f")
    shown = watch_world(_started_at(r, 100), count=6)
    assert shown == [(101, "default/a"), (101, "default/b"), (101, "default/c"),
                     (102, "default/d"), (102, "default/e"), (106, "default/f"),
                     (106, "stopped after")]


def test_watch_stops_at_the_end_of_a_revision_so_a_resume_shows_no_change_twice() -> None:
    r = Registry()
    r.batch("a", "b")
    r.batch("c")
    shown = watch_world(r, count=1, since=100)
    assert shown == [(101, "default/a"), (101, "default/b"), (101, "stopped after")]
    assert watch_world(r, count=1, since=101) == [(102, "default/c"), (102, "stopped after")]


def _started_at(registry: Registry, version: int) -> Registry:
    """The registry as a watch started at ``version`` sees it: PING answers ``version``."""
    final = registry.revision
    answers = iter([version])

    def ping() -> dict[str, Any]:
        return {"epoch": registry.epoch,
                "resourceVersion": next(answers, final)}

    registry.ping = ping  # type: ignore[method-assign]
    return registry
