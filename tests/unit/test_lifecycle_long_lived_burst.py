"""A burst of containers decoded for a result (a LIST) joins the oldest generation
unscanned (lifecycle.gc_paused_long_lived): no young collection over it when the GC is
enabled again, garbage that was young before it still collected, its own garbage still
collected by a full collection, and never a frozen heap undone."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from ecsm_actors.lifecycle import gc_paused_long_lived
from tests.helpers import cycle


@pytest.fixture
def nothing_frozen() -> Iterator[None]:
    if gc.get_freeze_count():
        pytest.skip("this process's heap is frozen")
    assert gc.isenabled()
    yield


def in_generation(obj: Any, generation: int) -> bool:
    return any(o is obj for o in gc.get_objects(generation))


@pytest.mark.usefixtures("nothing_frozen")
def test_the_burst_joins_the_oldest_generation_without_a_young_collection() -> None:
    young_collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start" and info["generation"] < 2:
            young_collections.append(info["generation"])

    with gc_paused_long_lived():
        result = [[{"items": [i]}] for i in range(20_000)]  # 40,000 tracked containers
    gc.callbacks.append(count)
    try:
        more = [[] for _ in range(500)]  # allocations that would trigger the young scan
    finally:
        gc.callbacks.remove(count)
    assert young_collections == []
    assert gc.get_count()[0] < 1000
    assert in_generation(result[-1][0], 2)
    assert gc.get_freeze_count() == 0
    del more


@pytest.mark.usefixtures("nothing_frozen")
def test_garbage_young_before_the_burst_is_collected_not_promoted() -> None:
    gc.collect()
    before = cycle()
    with gc_paused_long_lived():
        assert before() is None  # collected as the burst began


@pytest.mark.usefixtures("nothing_frozen")
def test_garbage_made_in_the_burst_is_collected_by_a_full_collection() -> None:
    with gc_paused_long_lived():
        during = cycle()
    assert during() is not None  # old now, unscanned by the young collections
    gc.collect()
    assert during() is None


def test_a_heap_frozen_at_startup_stays_frozen() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    try:
        with gc_paused_long_lived():
            result = [[i] for i in range(1000)]
        assert gc.get_freeze_count() == frozen
        assert gc.isenabled()
        assert not in_generation(result[0], 2)  # left to the young collections
    finally:
        gc.unfreeze()
