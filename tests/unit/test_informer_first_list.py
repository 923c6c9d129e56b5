"""A controller's first LIST sent ahead of its informer (:mod:`ecsm_actors.informer.ahead`):
the informer delivers that reply without listing again and links the event stream to it,
treats its failure as its own, and closes it when stopped first; the controller starts
its workers only once the informer synced. Fakes of tests/unit/test_informer.py; the
LIST ahead runs in its thread, waited for with a deadline."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from ecsm_actors.config import Config
from ecsm_actors.informer.ahead import FirstList
from ecsm_actors.runtime import Controller, ControllerSpec, ReconcileContext, Result
from tests.unit.test_informer import KIND, FakeRegistry, World

pytestmark = pytest.mark.timeout(10)


def sent_ahead(w: World) -> FirstList:
    """The first LIST of ``w``'s registry, sent from its thread and answered."""
    first = FirstList(KIND, registry_factory=lambda: w.registry,
                      subscriber_factory=w._subscribe).start()  # noqa: SLF001
    deadline = time.monotonic() + 5
    while not first.done:
        assert time.monotonic() < deadline, "the LIST sent ahead was never answered"
        time.sleep(0.001)
    return first


def informer_taking(w: World, first: FirstList) -> None:
    w.informer = type(w.informer)(
        KIND, w.handler, registry_factory=lambda: w.registry,
        subscriber_factory=w._subscribe, settings=w.settings, clock=w.clock,  # noqa: SLF001
        first_list=first)


def test_the_list_sent_ahead_is_delivered_once_and_the_stream_continues_from_it() -> None:
    w = World()
    w.registry.commit(KIND, "a")
    w.registry.commit(KIND, "b")
    w.registry.inbox.clear()  # before the subscriber was connected
    first = sent_ahead(w)
    w.registry.commit(KIND, "c")  # after the list: arrives on the stream
    informer_taking(w, first)
    w.pump()
    assert w.registry.calls == ["subscribe", "list"]  # neither made again
    assert w.informer.has_synced()
    assert w.handler.take() == [("add", "default/a", 1), ("add", "default/b", 2),
                                ("add", "default/c", 3)]
    assert w.informer.keys() == ["default/a", "default/b", "default/c"]


def test_a_list_ahead_that_failed_is_retried_by_the_informer_as_its_own_outage() -> None:
    w = World(backoff_base=0.05)
    w.registry.commit(KIND, "a", publish=False)
    w.registry.down = True
    first = sent_ahead(w)
    informer_taking(w, first)
    start = w.clock.now()
    w.informer.step()  # the LIST's Unavailable, raised in the informer: backoff
    assert not w.informer.has_synced()
    assert w.clock.now() - start == pytest.approx(0.05)
    w.registry.down = False
    w.informer.step()
    assert w.informer.has_synced()
    assert w.handler.take() == [("add", "default/a", 1)]
    assert w.registry.calls == ["subscribe", "list", "list"]  # the subscriber kept


class Closing(FakeRegistry):
    """A registry whose LIST waits for ``release``; records its close."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = threading.Event()
        self.closed = threading.Event()

    def list_versions(self, kind: str, namespace: str | None = None) -> Any:
        assert self.release.wait(5)
        return super().list_versions(kind, namespace)

    def close(self) -> None:
        self.closed.set()


def test_an_informer_stopped_before_the_list_ahead_is_answered_closes_what_it_made() -> None:
    w = World()
    registry = Closing(w.clock)
    first = FirstList(KIND, registry_factory=lambda: registry,
                      subscriber_factory=w._subscribe).start()  # noqa: SLF001
    informer_taking(w, first)
    w.informer.MAX_WAIT = 0.02  # how often it looks at stop
    w.informer.start()
    w.informer.stop(timeout=3)
    assert not w.informer.is_alive()
    assert not w.informer.has_synced()
    registry.release.set()  # answered after the informer stopped
    assert registry.closed.wait(5)
    deadline = time.monotonic() + 5
    while not w.subscribers[0].closed:
        assert time.monotonic() < deadline, "the subscriber made ahead was left open"
        time.sleep(0.001)


class Idle:
    def reconcile(self, ctx: ReconcileContext, key: str) -> Result:
        return Result()


def test_the_controller_starts_its_workers_only_once_its_informer_synced() -> None:
    w = World()
    registry = Closing(w.clock)
    spec = ControllerSpec(name="test-controller", kind=KIND, reconciler=Idle(), workers=3)
    controller = Controller(spec, Config(), lambda: registry,
                            subscriber_factory=w._subscribe,  # noqa: SLF001
                            report_liveness=False)
    controller.start()
    try:
        time.sleep(0.05)  # room for workers started with the controller to show up
        assert not controller.informer.has_synced()
        assert controller._workers == []  # noqa: SLF001 - what the test is about
        registry.release.set()
        assert controller.informer.wait_for_sync(5)
        deadline = time.monotonic() + 5
        while len(controller._workers) < 3:  # noqa: SLF001
            assert time.monotonic() < deadline, "the workers never started"
            time.sleep(0.001)
        assert all(t.is_alive() for t in controller._workers)  # noqa: SLF001
    finally:
        controller.stop(grace=1)
