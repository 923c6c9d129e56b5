"""The ``watch`` engine (:mod:`ecsm_actors.cli.watching`) on a fake registry, fake
subscriptions and a fake clock: every change is shown exactly once and in order across
silent links, duplicates, gaps and reconnections; a silent link is said, never silent;
``--since`` and ``--resume`` across a replaced store; where it stopped is kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.cli.watching import ResumeFile, Watch, WatchOptions, silence_threshold
from ecsm_actors.errors import DeadlineExceeded, Expired
from ecsm_actors.protocol import Event, EventType, Heartbeat
from ecsm_actors.registry.client import WatchResult

pytestmark = pytest.mark.timeout(10)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class Registry:
    """A registry's log: writes, PING and WATCH_SINCE, each costing ``rtt`` seconds."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.epoch = "e1"
        self.events: list[Event] = []
        self.down = False
        self.rtt = 0.0
        self.replays = 0

    def write(self, name: str, kind: str = "ECSMService", namespace: str = "default") -> Event:
        seq = len(self.events) + 1
        event = Event(epoch=self.epoch, seq=seq, type=EventType.ADDED, kind=kind,
                      key=f"{namespace}/{name}", resource_version=seq,
                      object={"metadata": {"name": name, "namespace": namespace}})
        self.events.append(event)
        return event

    def replace_store(self) -> None:
        self.epoch, self.events = "e2", []

    def heartbeat(self) -> Heartbeat:
        return Heartbeat(epoch=self.epoch, seq=len(self.events))

    def _answer(self) -> None:
        self.clock.now += self.rtt
        if self.down:
            raise DeadlineExceeded("registry did not answer within 10 s")

    def ping(self) -> dict[str, Any]:
        self._answer()
        return {"epoch": self.epoch, "resourceVersion": len(self.events)}

    def watch_since(self, resource_version: int) -> WatchResult:
        self._answer()
        self.replays += 1
        if resource_version > len(self.events):
            raise Expired(f"resourceVersion {resource_version} is not in the event log")
        return WatchResult(events=self.events[resource_version:],
                           resource_version=len(self.events), epoch=self.epoch)


class Subscription:
    """Messages delivered at given times, nothing else; a callable in the script is called
    at its time (it may write to the registry) and delivers what it returns."""

    def __init__(self, clock: Clock, script: list[tuple[float, Any]]) -> None:
        self.clock = clock
        self.script = script
        self.closed = False

    def recv(self, timeout: float | None) -> Any:
        assert timeout is not None
        if self.script and self.script[0][0] <= self.clock.now + timeout:
            at, msg = self.script.pop(0)
            self.clock.now = max(self.clock.now, at)
            return msg() if callable(msg) else msg
        self.clock.now += timeout
        return None

    def close(self) -> None:
        self.closed = True


class World:
    def __init__(self) -> None:
        self.clock = Clock()
        self.registry = Registry(self.clock)
        self.scripts: list[list[tuple[float, Any]]] = []
        #: One stream every subscription reads from (instead of a script each).
        self.stream: list[tuple[float, Any]] | None = None
        self.subscriptions: list[Subscription] = []
        self.shown: list[tuple[int, str]] = []
        self.notices: list[str] = []

    def subscribe(self) -> Subscription:
        script = self.stream if self.stream is not None else (
            self.scripts.pop(0) if self.scripts else [])
        sub = Subscription(self.clock, script)
        self.subscriptions.append(sub)
        return sub

    def watch(self, **options: Any) -> Watch:
        options.setdefault("kind", "ECSMService")
        options.setdefault("namespace", "default")
        engine = Watch(self.registry, self.subscribe, WatchOptions(**options),
                       emit=lambda e: self.shown.append((e.seq, e.key)),
                       notice=self.notices.append, clock=self.clock)
        engine.run()
        return engine


@pytest.fixture
def world() -> World:
    return World()


def test_a_silent_link_is_said_then_reconnected_and_the_missed_changes_replayed(world):
    r = world.registry

    def a_then_silence() -> Event:
        event = r.write("a")
        r.write("b"), r.write("c")  # committed next, never delivered: the link is silent
        return event

    world.scripts = [[(0.5, a_then_silence)]]
    engine = world.watch(count=3)
    assert world.notices == ["link silent for 4 s, reconnecting…"]
    assert world.shown == [(1, "default/a"), (2, "default/b"), (3, "default/c")]
    assert world.subscriptions[0].closed and len(world.subscriptions) == 2
    assert engine.last == 3 and engine.reconnects == 1


def test_silence_is_said_again_while_the_registry_cannot_be_reached(world):
    world.registry.write("a")

    def unreachable(rv: int) -> WatchResult:
        raise DeadlineExceeded("registry did not answer WATCH_SINCE within 10 s")

    world.registry.watch_since = unreachable
    engine = world.watch(namespace=None, timeout=13.0)
    assert world.notices == ["link silent for 4 s, reconnecting…",
                             "link silent for 8 s, reconnecting…",
                             "link silent for 12 s, reconnecting…"]
    assert world.shown == [] and engine.last == 1 and engine.reconnects == 3


def test_duplicates_from_a_new_subscription_and_the_replay_are_shown_once(world):
    r = world.registry
    a, b = r.write("a"), r.write("b")
    # The first subscription delivers a twice; the second one delivers a and b again.
    world.scripts = [[(0.1, a), (0.2, a)], [(5.0, a), (5.1, b), (5.2, r.heartbeat())]]
    world.watch(since=0, timeout=8.0)
    assert world.shown == [(1, "default/a"), (2, "default/b")]
    assert world.notices == ["link silent for 4 s, reconnecting…"]


def test_a_gap_in_seq_is_filled_by_a_replay_before_the_newer_event(world):
    r = world.registry

    def burst() -> Event:
        r.write("b")  # lost by the subscription
        r.write("h", kind="ECSMHpa")  # another kind: never shown
        r.write("other", namespace="prod")  # another namespace: never shown
        return r.write("e")

    world.scripts = [[(0.1, lambda: r.write("a")), (0.2, burst)]]
    engine = world.watch(count=3)
    assert world.shown == [(1, "default/a"), (2, "default/b"), (5, "default/e")]
    assert engine.last == 5 and r.replays == 1


def test_a_heartbeat_ahead_of_the_last_change_replays_what_was_missed(world):
    r = world.registry
    r.write("before")  # committed before the watch: not shown
    world.scripts = [[(0.5, lambda: (r.write("b"), r.heartbeat())[1])]]
    engine = world.watch(count=1)
    assert world.shown == [(2, "default/b")] and engine.last == 2


def test_since_from_a_replaced_store_is_refused_and_resume_starts_fresh_with_one_line(world):
    r = world.registry
    r.write("a")
    r.replace_store()
    r.write("x")
    with pytest.raises(Expired, match="replaced since.*watch again without --since"):
        world.watch(since=1, since_epoch="e1")
    engine = world.watch(since=1, since_epoch="e1", strict=False, timeout=0.5)
    assert world.notices == ["the registry store was replaced since resourceVersion 1 was "
                             "seen (new epoch): watching from its resourceVersion 1"]
    assert world.shown == [] and engine.epoch == "e2" and engine.last == 1


def test_since_beyond_the_log_is_refused_naming_the_version(world):
    world.registry.write("a")
    engine = Watch(world.registry, world.subscribe,
                   WatchOptions(kind="ECSMService", namespace=None, since=7),
                   emit=lambda e: None, notice=world.notices.append, clock=world.clock)
    with pytest.raises(Expired, match="cannot resume from resourceVersion 7"):
        engine.run()
    assert engine.last is None  # nothing to resume from


def test_a_store_replaced_during_the_watch_is_said_once_and_watched_from_then(world):
    r = world.registry

    def wiped() -> Heartbeat:
        r.replace_store()
        r.write("y")  # in the new store before the watch hears of it: not shown
        return r.heartbeat()

    world.scripts = [[(0.1, lambda: r.write("a")), (0.2, wiped), (0.3, lambda: r.write("z"))]]
    engine = world.watch(count=2)
    assert world.notices == ["the registry store was replaced (new epoch): watching it "
                             "from resourceVersion 1; changes made in it before are not "
                             "shown"]
    assert world.shown == [(1, "default/a"), (2, "default/z")] and engine.epoch == "e2"


def test_the_silence_threshold_adapts_to_the_round_trip(world):
    assert silence_threshold(1.0, 0.0) == 4.0
    assert silence_threshold(1.0, 2.0) == 11.0
    assert silence_threshold(1.0, 60.0) == 13.0  # a round trip of retries is no link's
    world.registry.rtt = 2.0
    world.watch(timeout=14.0)
    assert world.notices == ["link silent for 11 s, reconnecting…"]


def test_the_resume_file_keeps_each_scope_until_the_store_changes(tmp_path: Path):
    resume = ResumeFile(tmp_path / "state" / "watch.json")
    assert resume.epoch("ipc://r") is None and resume.position("ipc://r", "k/ns") is None
    resume.save("ipc://r", "e1", "ECSMService/default", 7)
    resume.save("ipc://r", "e1", "ECSMHpa/*", 9)
    assert resume.position("ipc://r", "ECSMService/default") == ("e1", 7)
    assert resume.position("ipc://r", "ECSMHpa/*") == ("e1", 9)
    resume.save("ipc://r", "e2", "ECSMHpa/*", 1)
    assert resume.epoch("ipc://r") == "e2"
    assert resume.position("ipc://r", "ECSMService/default") is None
    assert (tmp_path / "state" / "watch.json").stat().st_mode & 0o077 == 0
    (tmp_path / "state" / "watch.json").write_text("{not json")
    assert resume.epoch("ipc://r") is None


def test_a_registry_with_a_longer_heartbeat_period_is_learnt_and_not_taken_for_silent(world):
    r = world.registry
    world.stream = [(5.0 * i, r.heartbeat) for i in range(1, 25)]  # every 5 s, not 1 s
    world.watch(timeout=121.0, heartbeat_interval=1.0)
    # three gaps of 5 s tell the period: no line after the fourth heartbeat (at 20 s)
    assert world.notices == ["link silent for 4 s, reconnecting…"] * 4
    assert world.clock.now == 121.0
