"""A serving loop's cyclic GC runs at its idle moments (lifecycle.IdleCollector): no
collection inside the requests' allocations below the busy bound, the due collection
when the loop calls for it (its garbage found), one on its own beyond the bound (memory
stays bounded in a burst with no idle moment), the middle and full generations at the
interpreter's own pace, and the interpreter's thresholds back when it closes."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ecsm_actors.lifecycle import IdleCollector
from tests.helpers import cycle


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generation of each collection that starts while the test runs."""
    seen: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    assert gc.isenabled()
    thresholds = gc.get_threshold()
    gc.collect()
    gc.callbacks.append(count)
    yield seen
    gc.callbacks.remove(count)
    gc.set_threshold(*thresholds)


def test_requests_allocations_below_the_busy_bound_trigger_no_collection(
        collections: list[int]) -> None:
    collector = IdleCollector(busy=10_000)
    try:
        kept = [[] for _ in range(5_000)]  # 7 young collections' worth at the default
        assert collections == []
        assert len(kept) == 5_000
    finally:
        collector.close()


def test_the_idle_moment_runs_the_young_collection_due_and_frees_its_garbage(
        collections: list[int]) -> None:
    collector = IdleCollector(busy=10_000)
    try:
        garbage = cycle()
        collector.collect()
        assert collections == []  # nothing due yet: the young count is under 700
        kept = [[] for _ in range(1_000)]
        collector.collect()
        assert collections == [0]
        assert garbage() is None
        assert len(kept) == 1_000
    finally:
        collector.close()


def test_a_burst_beyond_the_busy_bound_is_collected_on_its_own(
        collections: list[int]) -> None:
    collector = IdleCollector(busy=2_000)
    try:
        garbage = [cycle() for _ in range(1_500)]  # 3,000 containers, never freed by counts
        assert collections
        assert any(ref() is None for ref in garbage)
    finally:
        collector.close()


def test_the_middle_and_full_generations_follow_the_interpreters_thresholds(
        collections: list[int]) -> None:
    t0, t1, t2 = gc.get_threshold()
    collector = IdleCollector(busy=10_000)
    kept: list[list[list[int]]] = []
    try:
        # As the interpreter: a middle collection once t1 young ones passed (the next one
        # due is the middle one), a full one once t2 middle ones passed.
        for _ in range((t1 + 2) * (t2 + 1) + 1):
            kept.append([[] for _ in range(t0 + 1)])
            collector.collect()
        assert collections.count(1) == t2 + 1
        assert collections.count(2) == 1
    finally:
        collector.close()


def test_closing_gives_back_the_interpreters_thresholds() -> None:
    thresholds = gc.get_threshold()
    collector = IdleCollector(busy=50_000)
    assert gc.get_threshold()[0] == 50_000
    collector.close()
    assert gc.get_threshold() == thresholds
