"""The event recorder: repeats aggregated into one series, new series rate-limited per
object, and a controller never blocked nor failed by a slow or absent registry."""

from __future__ import annotations

import threading
import time
import tracemalloc
from typing import Any

from ecsm_actors.errors import DeadlineExceeded
from ecsm_actors.runtime.events import EventRecorder, object_ref

WEB = object_ref("ECSMService", "default", "web")


class FakeRegistry:
    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def record_events(self, events: list[dict[str, Any]]) -> int:
        self.batches.append(list(events))
        return len(events)


class DownRegistry:
    """A registry that is down: each call waits its whole deadline, then gives up."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()

    def record_events(self, events: list[dict[str, Any]]) -> int:
        self.calls += 1
        self.release.wait(5)
        raise DeadlineExceeded("registry down", applied=None)


def test_a_flapping_condition_is_sent_as_one_occurrence_with_its_count() -> None:
    registry = FakeRegistry()
    recorder = EventRecorder("service-controller", lambda: registry, autostart=False)
    for _ in range(1000):
        recorder.warning(WEB, "DependencyWait", "waiting for db")
        recorder.normal(WEB, "DependencyReady", "db is ready")
    assert recorder.flush() == 2000
    counts = {e["reason"]: e["count"] for e in registry.batches[0]}
    assert counts == {"DependencyWait": 1000, "DependencyReady": 1000}
    recorder.warning(WEB, "DependencyWait", "waiting for db")
    recorder.flush()
    assert [(e["reason"], e["count"]) for e in registry.batches[1]] == [("DependencyWait", 1)]


def test_new_series_of_one_object_are_rate_limited_and_counted() -> None:
    registry = FakeRegistry()
    now = [1000.0]
    recorder = EventRecorder("hpa-controller", lambda: registry, autostart=False, burst=5,
                             refill=10.0, clock=lambda: now[0])
    for i in range(20):
        recorder.normal(WEB, "Scaled", f"to {i}")
    recorder.normal(object_ref("ECSMService", "default", "other"), "Scaled", "to 1")
    recorder.flush()
    assert len(registry.batches[0]) == 6
    assert recorder.stats()["droppedRateLimited"] == 15
    now[0] += 10
    recorder.normal(WEB, "Scaled", "to 99")
    assert recorder.stats()["droppedRateLimited"] == 15


def test_recording_never_blocks_nor_raises_while_the_registry_is_down() -> None:
    registry = DownRegistry()
    recorder = EventRecorder("service-controller", lambda: registry, flush_interval=0.01)
    try:
        started = time.perf_counter()
        for i in range(5000):
            recorder.warning(WEB, "EcsmUnavailable", f"attempt {i % 3}")
        elapsed = time.perf_counter() - started
        deadline = time.monotonic() + 5
        while registry.calls == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert registry.calls == 1  # the flusher is stuck on the registry, not the caller
        for _ in range(100):
            recorder.warning(WEB, "EcsmUnavailable", "attempt 0")
        assert elapsed < 1.0
    finally:
        registry.release.set()
        recorder.close(timeout=5)
    assert recorder.stats()["droppedUnsent"] > 0


def test_a_recorder_starts_no_thread_until_its_first_event() -> None:
    before = threading.active_count()
    recorder = EventRecorder("supervisor", FakeRegistry)
    assert threading.active_count() == before
    recorder.normal(WEB, "Started", "pid 1")
    assert threading.active_count() == before + 1
    recorder.close()


class NoRegistry:
    """Takes every batch and keeps nothing."""

    def record_events(self, events: list[dict[str, Any]]) -> int:
        return len(events)


def _objects(count: int) -> list[dict[str, str]]:
    return [{"kind": "ECSMService", "namespace": "default", "name": f"svc-{i:04d}",
             "uid": f"{i:08d}-5d2c-4a7e-9f1b-3c6e8a0d{i:04d}"} for i in range(count)]


def test_two_thousand_remembered_series_hold_less_than_half_a_kibibyte_each() -> None:
    objects = _objects(1000)
    recorder = EventRecorder("service-controller", NoRegistry, autostart=False)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i, ref in enumerate(objects):
            recorder.normal(ref, "Created", f"created revision {i:010x} with 1 replica(s)")
            recorder.normal(ref, "RolloutComplete", f"revision {i:010x} available: 1/1 ready")
        recorder.flush()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert recorder.stats()["series"] == 2000
    assert held / 2000 < 512


def test_a_series_is_sent_with_every_key_of_its_involved_object() -> None:
    registry = FakeRegistry()
    recorder = EventRecorder("service-controller", lambda: registry, autostart=False)
    pod = {"kind": "ECSMService", "namespace": "ns", "name": "web", "uid": "u-1",
           "apiVersion": "ecsm.sh/v1"}
    recorder.normal(pod, "Created", "created")
    recorder.normal(WEB, "Created", "created")
    recorder.flush()
    assert [e["involvedObject"] for e in registry.batches[0]] == [pod, WEB]


def test_the_rate_limit_of_an_object_untouched_until_refilled_is_forgotten() -> None:
    now = [1000.0]
    recorder = EventRecorder("hpa-controller", NoRegistry, autostart=False, burst=5,
                             refill=10.0, clock=lambda: now[0])
    for ref in _objects(100):
        recorder.normal(ref, "Scaled", "to 1")
    assert recorder.stats()["rateLimitedObjects"] == 100
    now[0] += 5 * 10.0
    recorder.flush()
    assert recorder.stats()["rateLimitedObjects"] == 0
    for i in range(5):
        recorder.normal(WEB, "Scaled", f"to {i}")  # a full burst again, as a new object's
    recorder.normal(WEB, "Scaled", "to 5")
    assert recorder.stats()["droppedRateLimited"] == 1
