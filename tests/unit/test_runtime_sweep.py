"""The runtime's sweep runner: a failing sweep is retried with a growing backoff capped at
its interval and said once, and a sweep that succeeds again is back on its interval."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest

from ecsm_actors.errors import EcsmUnavailable
from ecsm_actors.runtime.sweep import SWEEP_KEY, SweepRunner


class FakeQueue:
    def __init__(self) -> None:
        self.delays: list[float] = []
        self.added: list[str] = []

    def add_after(self, key: str, delay: float) -> None:
        assert key == SWEEP_KEY
        self.delays.append(delay)

    def add(self, key: str) -> None:
        self.added.append(key)


class FlakySweep:
    interval = 10.0

    def __init__(self) -> None:
        self.down = True

    def sweep(self, keys: Sequence[str], enqueue: Callable[[str], None]) -> int:
        if self.down:
            raise EcsmUnavailable("http://ecsm", "connection refused")
        for key in keys[:1]:
            enqueue(key)
        return min(1, len(keys))


def test_a_failing_sweep_backs_off_says_it_once_and_recovers(
        caplog: pytest.LogCaptureFixture) -> None:
    queue, sweep = FakeQueue(), FlakySweep()
    runner = SweepRunner("svc", sweep, cast(Any, queue), lambda: ["ns/a", "ns/b"],
                         backoff_base=1.0)
    with caplog.at_level(logging.INFO, logger="ecsm_actors.runtime.sweep"):
        for _ in range(6):
            runner.run()
        assert queue.delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
        assert runner.stats()["failing"] and runner.stats()["failures"] == 6
        sweep.down = False
        runner.run()
    assert queue.delays[-1] == 10.0 and queue.added == ["ns/a"]
    assert not runner.stats()["failing"] and runner.stats()["sweep_failures"] == 6
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [line for line in lines if "sweep failing" in line] == [
        "svc: sweep failing, retrying with backoff: EcsmUnavailable: ECSM unreachable at "
        "http://ecsm: connection refused"]
    assert "svc: sweep succeeded again after 6 failures" in lines
