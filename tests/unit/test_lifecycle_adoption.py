"""A child forked by the zygote is the child of the zygote's intermediate process until
the supervisor adopts it: the parent-death signal is armed only after the adoption (it
would fire at the intermediate's exit), and the intermediate is never taken for a dead
supervisor meanwhile. The forked child does not wait for it before its main starts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ecsm_actors import lifecycle

SUPERVISOR, INTERMEDIATE = 100, 200


class FakeKernel:
    """``os.getppid`` answering the intermediate until ``adopt_after`` calls, then the
    supervisor; records the prctl calls."""

    def __init__(self, adopt_after: int) -> None:
        self.calls = 0
        self.adopt_after = adopt_after
        self.armed_when: int | None = None
        self.exits: list[int] = []

    def getppid(self) -> int:
        self.calls += 1
        return INTERMEDIATE if self.calls <= self.adopt_after else SUPERVISOR


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKernel]:
    fake = FakeKernel(adopt_after=3)
    monkeypatch.setenv(lifecycle.PARENT_PID_ENV, str(SUPERVISOR))
    monkeypatch.setattr(lifecycle.os, "getppid", fake.getppid)
    monkeypatch.setattr(lifecycle.os, "_exit", fake.exits.append)
    monkeypatch.setattr(lifecycle.time, "sleep", lambda s: None)

    class Libc:
        def prctl(self, *args: int) -> int:
            fake.armed_when = fake.calls
            return 0

    monkeypatch.setattr(lifecycle.ctypes, "CDLL", lambda *a, **k: Libc())
    yield fake
    lifecycle._adopting_parent = None


def test_the_parent_death_signal_is_armed_only_once_the_supervisor_adopted_the_child(
        kernel: FakeKernel) -> None:
    lifecycle.adopted_from(INTERMEDIATE)
    lifecycle.die_with_parent()
    assert kernel.armed_when is not None and kernel.armed_when > kernel.adopt_after
    assert kernel.exits == []


def test_a_child_not_yet_adopted_is_not_taken_for_an_orphan(kernel: FakeKernel) -> None:
    lifecycle.adopted_from(INTERMEDIATE)
    lifecycle.exit_if_orphaned()  # its parent is still the intermediate
    assert kernel.exits == []


def test_a_child_whose_supervisor_is_gone_exits_once_it_checks(
        kernel: FakeKernel, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle.os, "getppid", lambda: 1)  # adopted by init instead
    lifecycle.adopted_from(INTERMEDIATE)
    lifecycle.die_with_parent()
    assert kernel.exits == [0]
