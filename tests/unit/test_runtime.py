"""Reconcile outcomes, failure conditions and echo suppression of the controller runtime,
with a fake registry and a fake clock (no threads: ``Controller.process`` runs one key)."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import pytest

from ecsm_actors.clock import FakeClock
from ecsm_actors.config import Config, ControllerSettings
from ecsm_actors.errors import Conflict, NotFound, TerminalError, Unavailable
from ecsm_actors.runtime import Controller, ControllerSpec, ReconcileContext, Result
from ecsm_actors.runtime.echo import EchoFilter

KEY = "default/a"


class FakeRegistry:
    """One kind, a global resourceVersion, OCC on update_status."""

    def __init__(self) -> None:
        self.rv = 0
        self.objects: dict[str, dict[str, Any]] = {}
        self.status_writes = 0

    def put(self, name: str) -> dict[str, Any]:
        self.rv += 1
        obj = {"kind": "ECSMService", "metadata": {"namespace": "default", "name": name,
                                                   "resourceVersion": self.rv}, "status": {}}
        self.objects[f"default/{name}"] = obj
        return copy.deepcopy(obj)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            return copy.deepcopy(self.objects[f"{namespace}/{name}"])
        except KeyError:
            raise NotFound(f"{kind} {namespace}/{name} not found") from None

    def update_status(self, obj: dict[str, Any]) -> dict[str, Any]:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        current = self.objects.get(key)
        if current is None:
            raise NotFound(key)
        wanted = obj["metadata"].get("resourceVersion")
        if wanted is not None and wanted != current["metadata"]["resourceVersion"]:
            raise Conflict(f"{key}: stale")
        self.rv += 1
        current["status"] = copy.deepcopy(obj.get("status") or {})
        current["metadata"]["resourceVersion"] = self.rv
        self.status_writes += 1
        return copy.deepcopy(current)

    def condition(self, key: str, type_: str = "Degraded") -> dict[str, Any] | None:
        for c in self.objects[key]["status"].get("conditions") or ():
            if c["type"] == type_:
                return c
        return None

    def close(self) -> None:
        pass


class Scripted:
    """A reconciler whose next outcomes the test scripts."""

    def __init__(self) -> None:
        self.script: list[Callable[[ReconcileContext, str], Result]] = []
        self.calls = 0

    def reconcile(self, ctx: ReconcileContext, key: str) -> Result:
        self.calls += 1
        step = self.script.pop(0) if self.script else (lambda c, k: Result())
        return step(ctx, key)


def raise_(e: Exception) -> Callable[[ReconcileContext, str], Result]:
    def step(ctx: ReconcileContext, key: str) -> Result:
        raise e
    return step


class Rig:
    def __init__(self, threshold: int = 3) -> None:
        self.clock = FakeClock()
        self.registry = FakeRegistry()
        self.registry.put("a")
        self.reconciler = Scripted()
        cfg = Config(controller=ControllerSettings(failure_threshold=threshold, backoff_base=1.0,
                                                   backoff_cap=8.0, backoff_jitter=0.0))
        spec = ControllerSpec(name="test-controller", kind="ECSMService",
                              reconciler=self.reconciler, workers=1)
        self.controller = Controller(spec, cfg, lambda: self.registry,
                                     subscriber_factory=lambda: None,  # type: ignore
                                     clock=self.clock, report_liveness=False)
        self.ctx = self.controller.context(self.registry)
        self.queue = self.controller.queue

    def run(self, *steps: Callable[[ReconcileContext, str], Result]) -> None:
        """Queue KEY, take it, reconcile it with ``steps`` scripted, mark it done."""
        self.reconciler.script.extend(steps)
        self.queue.add(KEY)
        key, _ = self.queue.get(timeout=0)
        assert key == KEY
        self.controller.process(self.ctx, key)
        self.queue.done(key)

    def next_ready_after(self) -> float | None:
        """Seconds of fake time until KEY is handed out again (None: never)."""
        start = self.clock.now()
        key, _ = self.queue.get(timeout=1000)
        if key is None:
            return None
        self.queue.done(key)
        return self.clock.now() - start


def test_done_forgets_the_key_and_counts_one_reconcile(caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    caplog.set_level(logging.INFO)
    rig.run(lambda c, k: Result())
    assert rig.next_ready_after() is None
    stats = rig.controller.stats()
    assert stats["reconciles"] == 1 and stats["errors"] == 0
    assert stats["latency_seconds"]["count"] == 1
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("key=")]
    assert len(lines) == 1
    assert lines[0].startswith("key=default/a result=done duration=")
    assert lines[0].endswith("ms")


def test_requeue_after_brings_the_key_back_after_exactly_that_delay() -> None:
    rig = Rig()
    rig.run(lambda c, k: Result(requeue_after=7.5))
    assert rig.next_ready_after() == pytest.approx(7.5)
    assert rig.controller.stats()["requeues"] == 1


def test_requeue_true_backs_off_exponentially() -> None:
    rig = Rig()
    rig.run(lambda c, k: Result(requeue=True))
    assert rig.next_ready_after() == pytest.approx(1.0)
    rig.run(lambda c, k: Result(requeue=True))
    assert rig.next_ready_after() == pytest.approx(2.0)


def test_an_exception_is_retried_with_backoff_and_logged_as_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    caplog.set_level(logging.INFO)
    rig.run(raise_(Unavailable("registry did not answer")))
    assert rig.next_ready_after() == pytest.approx(1.0)
    rig.run(raise_(RuntimeError("a bug")))
    assert rig.next_ready_after() == pytest.approx(2.0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "key=default/a result=error error=Unavailable" in warnings[0].getMessage()
    assert warnings[1].exc_info is not None  # a bug gets its traceback
    assert rig.controller.stats()["errors"] == 2


def test_success_resets_the_backoff() -> None:
    rig = Rig()
    rig.run(raise_(RuntimeError("x")))
    rig.next_ready_after()
    rig.run(lambda c, k: Result())
    rig.run(raise_(RuntimeError("x")))
    assert rig.next_ready_after() == pytest.approx(1.0)


def test_a_key_failing_past_the_threshold_keeps_retrying_and_gets_a_condition_saying_why() -> None:
    rig = Rig(threshold=3)
    for _ in range(2):
        rig.run(raise_(RuntimeError("ECSM said no")))
        rig.next_ready_after()
    assert rig.registry.condition(KEY) is None
    rig.run(raise_(RuntimeError("ECSM said no")))
    condition = rig.registry.condition(KEY)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("True", "ReconcileFailing")
    assert "3 consecutive" in condition["message"] and "ECSM said no" in condition["message"]
    assert rig.next_ready_after() == pytest.approx(4.0)  # still retried
    for _ in range(3):
        rig.run(raise_(RuntimeError("ECSM said no")))
    assert rig.next_ready_after() == pytest.approx(8.0)  # capped, never dropped
    writes = rig.registry.status_writes
    rig.run(lambda c, k: Result())
    condition = rig.registry.condition(KEY)
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("False", "ReconcileSucceeded")
    assert rig.registry.status_writes == writes + 1


def test_recovery_leaves_a_degraded_condition_set_by_the_reconciler_alone() -> None:
    rig = Rig(threshold=1)
    rig.run(raise_(RuntimeError("x")))
    rig.next_ready_after()
    obj = rig.registry.get("ECSMService", "default", "a")
    obj["status"]["conditions"] = [{"type": "Degraded", "status": "True", "reason": "Mine",
                                    "message": "set by the controller"}]
    rig.registry.update_status(obj)
    rig.run(lambda c, k: Result())
    assert rig.registry.condition(KEY)["reason"] == "Mine"  # type: ignore[index]


def test_a_terminal_error_is_recorded_on_the_object_and_not_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig()
    rig.run(raise_(TerminalError("image app@9.9 does not exist", reason="ImageNotFound")))
    assert rig.next_ready_after() is None
    condition = rig.registry.condition(KEY)
    assert condition is not None
    assert condition["status"] == "True" and condition["reason"] == "ImageNotFound"
    assert condition["message"] == "image app@9.9 does not exist"
    assert condition["lastTransitionTime"].endswith("Z")
    assert [r for r in caplog.records if r.levelno == logging.ERROR and "terminal" in r.message]
    assert rig.controller.stats()["terminal"] == 1


def test_not_found_means_the_object_is_gone_and_the_key_is_done() -> None:
    rig = Rig()
    rig.run(raise_(NotFound("gone")))
    assert rig.next_ready_after() is None
    assert rig.controller.stats()["errors"] == 0


def test_the_echo_of_a_status_write_through_the_context_is_not_enqueued() -> None:
    rig = Rig()
    enqueue = rig.controller.handler  # what the informer calls

    def write(ctx: ReconcileContext, key: str) -> Result:
        obj = ctx.registry.get("ECSMService", "default", "a")
        obj["status"]["observedGeneration"] = 1
        ctx.update_status(obj)
        return Result()

    rig.run(write)
    written = rig.registry.objects[KEY]["metadata"]["resourceVersion"]
    enqueue.on_update(KEY, written)
    assert len(rig.queue) == 0
    enqueue.on_update(KEY, written + 1)
    assert len(rig.queue) == 1


def test_liveness_reports_queue_depth_and_the_oldest_in_flight_age() -> None:
    rig = Rig()
    rig.queue.add("default/x")
    rig.queue.add("default/y")
    rig.queue.get(timeout=0)
    rig.clock.advance(4.0)
    report = rig.controller.liveness_report()
    assert report["queue_depth"] == 1
    assert report["oldest_inflight_age"] == pytest.approx(4.0)
    assert report["stats"]["synced"] is False
    assert report["stats"]["in_flight"] == 1


def test_failing_keys_share_one_retry_budget_shown_in_stats() -> None:
    rig = Rig()
    budget = rig.controller.stats()["retry_budget"]
    assert (budget["qps"], budget["burst"], budget["tokens"]) == (10.0, 100, 100)
    for i in range(120):  # 120 keys fail at the same moment
        rig.registry.put(f"k{i}")
        rig.reconciler.script.append(raise_(RuntimeError("ECSM down")))
        rig.controller.process(rig.ctx, f"default/k{i}")
    budget = rig.controller.stats()["retry_budget"]
    assert (budget["reservations"], budget["delayed"]) == (120, 20)
    assert budget["wait"] == pytest.approx(2.1)  # 20 retries queued ahead at 10/s
    assert rig.controller.liveness_report()["stats"]["retry_budget"] == budget


# -- the echo filter on its own ---------------------------------------------------------------


def test_an_echo_arriving_after_the_reply_is_dropped_once() -> None:
    echo = EchoFilter()
    echo.begin(KEY)
    assert echo.end(KEY, 10) is False
    assert echo.admit(KEY, 10) is False
    assert echo.admit(KEY, 10) is True  # a replayed copy is a real event again
    assert len(echo) == 0


def test_events_arriving_during_the_write_are_held_and_the_others_released() -> None:
    echo = EchoFilter()
    echo.begin(KEY)
    assert echo.admit(KEY, 10) is False  # held: our echo, as it turns out
    assert echo.end(KEY, 10) is False  # nothing else arrived
    echo.begin(KEY)
    assert echo.admit(KEY, 11) is False
    assert echo.admit(KEY, 12) is False  # someone else's write
    assert echo.end(KEY, 11) is True  # → enqueue


def test_a_failed_write_releases_what_was_held() -> None:
    echo = EchoFilter()
    echo.begin(KEY)
    echo.admit(KEY, 5)
    assert echo.end(KEY, None) is True


def test_a_newer_event_forgets_a_write_whose_echo_was_lost() -> None:
    echo = EchoFilter()
    echo.begin(KEY)
    echo.end(KEY, 10)
    assert echo.admit(KEY, 12) is True
    assert len(echo) == 0
    assert echo.admit("default/other", 10) is True


# -- the process main's controller loading ----------------------------------------------------


def test_a_controller_is_loaded_by_name_and_an_unknown_name_is_refused() -> None:
    from ecsm_actors.controllers.main import load_spec
    from ecsm_actors.errors import ConfigError

    spec = load_spec("noop", Config())
    assert spec.kind == "ECSMService" and spec.name == "noop-controller"
    for bad in ("nope", "main", "../x", "Noop"):
        with pytest.raises(ConfigError, match="unknown controller"):
            load_spec(bad, Config())
