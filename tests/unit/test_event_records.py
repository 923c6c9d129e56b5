"""Event records in the registry's event store: aggregated into one record per (object,
type, reason, message, component), bounded by count and by age, apart from the objects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors.api.names import format_timestamp
from ecsm_actors.errors import Invalid
from ecsm_actors.store.event_store import EventStore
from tests.store_writes import NOW, FakeClock, occurrence


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events(tmp_path: Path, clock: FakeClock) -> Iterator[EventStore]:
    store = EventStore(tmp_path / "events", limit=100, ttl=3600, clock=clock)
    yield store
    store.close()


def test_a_flapping_condition_is_one_record_whose_count_grows(
        events: EventStore, clock: FakeClock) -> None:
    for i in range(500):
        clock.now = NOW + i
        events.record([occurrence("web", at=clock.now)])
    [record] = events.list("default", "ECSMService", "web")
    assert record["count"] == 500
    assert record["firstTimestamp"] == format_timestamp(NOW)
    assert record["lastTimestamp"] == format_timestamp(NOW + 499)
    assert record["kind"] == "Event" and record["metadata"]["name"].startswith("web.")


def test_a_retried_occurrence_moves_no_timestamp(events: EventStore) -> None:
    events.record([occurrence("web", at=NOW + 10)])
    events.record([occurrence("web", at=NOW)])
    [record] = events.list()
    assert record["lastTimestamp"] == format_timestamp(NOW + 10)
    assert record["firstTimestamp"] == format_timestamp(NOW)


def test_a_flood_keeps_the_most_recently_seen_records_up_to_the_limit(
        events: EventStore, clock: FakeClock) -> None:
    for i in range(1000):
        clock.now = NOW + i
        events.record([occurrence(f"svc-{i}", at=clock.now)])
    kept = events.list()
    assert len(events) == 100 and len(kept) == 100
    assert [r["involvedObject"]["name"] for r in kept] == [f"svc-{i}" for i in range(900, 1000)]


def test_expired_records_are_removed_a_bounded_number_at_a_time(
        events: EventStore, clock: FakeClock) -> None:
    events.record([occurrence(f"old-{i}", at=NOW) for i in range(30)])
    events.record([occurrence("recent", at=NOW + 3000)])
    clock.now = NOW + 3700
    assert [r["involvedObject"]["name"] for r in events.list()] == ["recent"]
    assert events.expire(max_records=20) == 20
    assert events.expire(max_records=20) == 10
    assert events.expire(max_records=20) == 0
    assert len(events) == 1


def test_a_full_event_map_evicts_the_oldest_instead_of_refusing(
        tmp_path: Path, clock: FakeClock) -> None:
    store = EventStore(tmp_path / "small", limit=100_000, ttl=3600, map_size=4 << 20,
                       clock=clock)
    try:
        for i in range(3000):
            store.record([occurrence(f"svc-{i}", message="x" * 1000, at=NOW + i)])
        assert store.stats["evicted"] > 0
        assert store.list()[-1]["involvedObject"]["name"] == "svc-2999"
    finally:
        store.close()


def test_since_and_the_involved_object_select_records(events: EventStore) -> None:
    events.record([occurrence("a", at=NOW), occurrence("b", at=NOW + 60),
                   occurrence("b", reason="Scaled", message="to 3", at=NOW + 120)])
    assert [r["reason"] for r in events.list("default", "ECSMService", "b")] == [
        "BackOff", "Scaled"]
    assert [r["involvedObject"]["name"] for r in events.list(since=NOW + 30)] == ["b", "b"]
    assert events.list("other") == []


def test_a_malformed_occurrence_is_refused_with_its_field_and_nothing_is_stored(
        events: EventStore) -> None:
    bad = occurrence("web")
    bad["type"] = "Fatal"
    with pytest.raises(Invalid) as info:
        events.record([occurrence("ok"), bad])
    assert [c.field for c in info.value.causes] == ["type"]
    assert events.list() == []


def test_a_long_message_is_cut(events: EventStore) -> None:
    events.record([occurrence("web", message="m" * 5000)])
    [record] = events.list()
    assert len(record["message"]) == 1024 and record["message"].endswith("...")
