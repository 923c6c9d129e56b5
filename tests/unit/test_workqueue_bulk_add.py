"""A restarted controller's first list is queued in bulk: into an empty workqueue
(``WorkQueue.add_all``) and through an echo filter with nothing of its own to filter
(``EchoFilter.admit_all``) without a call per key, and with the same outcome as the keys
added one by one."""

from __future__ import annotations

import random

import pytest

from ecsm_actors.clock import FakeClock
from ecsm_actors.runtime.echo import EchoFilter
from ecsm_actors.workqueue import WorkQueue


def drain(q: WorkQueue, done: bool = True) -> list[str]:
    out = []
    while True:
        key, shutdown = q.get(timeout=0)
        assert not shutdown
        if key is None:
            return out
        out.append(key)
        if done:
            q.done(key)


def no_call_per_key(*args: object, **kwargs: object) -> bool:
    raise AssertionError("a key was added one by one")


def test_a_first_list_goes_into_an_empty_queue_without_a_call_per_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    q = WorkQueue(clock=FakeClock())
    keys = [f"default/s{i:04d}" for i in range(1000)]
    monkeypatch.setattr(q, "_add_locked", no_call_per_key)
    q.add_all([*keys, keys[3]])  # a key twice: once
    monkeypatch.undo()
    assert len(q) == 1000
    q.add(keys[5])  # waiting already: collapses
    q.add(keys[7], resync=True)  # waiting as an event already: stays an event
    assert len(q) == 1000
    assert drain(q) == keys


def test_keys_added_in_bulk_then_worked_on_behave_as_added_one_by_one() -> None:
    rng = random.Random(14)
    keys = [f"k{rng.randint(0, 40)}" for _ in range(60)]
    bulk, single = WorkQueue(clock=FakeClock()), WorkQueue(clock=FakeClock())
    bulk.add_all(keys)
    for key in keys:
        single.add(key)
    for _ in range(200):  # the same operations on both, their answers compared
        roll, key, other = rng.random(), f"k{rng.randint(0, 50)}", f"k{rng.randint(0, 50)}"
        resync = rng.random() < 0.5
        if roll < 0.3:
            answers = [q.get(timeout=0) for q in (bulk, single)]
            assert answers[0] == answers[1]
            continue
        for q in (bulk, single):
            if roll < 0.5:
                q.add(key, resync=resync)
            elif roll < 0.7:
                q.add_all([key, other])
            else:
                q.done(key)
        assert len(bulk) == len(single)
    assert drain(bulk) == drain(single)


def test_a_first_list_passes_an_echo_filter_with_nothing_written_without_a_check_per_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    echo = EchoFilter()
    items = [(f"default/s{i}", 10 + i) for i in range(100)]
    monkeypatch.setattr(echo, "_admit_locked", no_call_per_key)
    assert echo.admit_all(items) == [key for key, _ in items]
    monkeypatch.undo()
    echo.begin("default/s1")
    assert echo.end("default/s1", 11) is False  # our own status write, at version 11
    assert echo.admit_all(items) == [key for key, _ in items if key != "default/s1"]
