"""The controller runtime end to end: a real registry, the ``noop`` controller process,
objects written through the registry client; every key must be reconciled to its final
version, and a burst of updates to one key must collapse into few reconciles."""

from __future__ import annotations

import random
import signal
from pathlib import Path

import pytest

from tests import noop_harness as h
from tests.helpers import Processes, wait_until
from tests.registry_samples import service, with_changes

pytestmark = pytest.mark.timeout(60)


def unconditional(obj: dict) -> dict:
    """The object without its resourceVersion: the test writes regardless of the
    controller's concurrent status writes."""
    out = dict(obj)
    out["metadata"] = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return out


def bump_replicas(obj: dict) -> dict:
    """A real spec change (an identical update is a no-op that creates no version)."""
    replicas = obj["spec"]["deploymentStrategy"]["replicas"] % 9 + 1
    return with_changes(unconditional(obj), spec__deploymentStrategy__replicas=replicas)


def test_a_thousand_creates_updates_and_deletes_each_reach_the_controller_at_their_final_version(
        processes: Processes, run_dir: Path) -> None:
    h.start_registry(processes)
    controller = h.start_noop(processes, ECSM_ACTORS_CONTROLLER_WORKERS="4")
    h.wait_reconciling(run_dir)
    rng = random.Random(4)
    final: dict[str, int | None] = {}
    objects: dict[str, dict] = {}
    with h.client(run_dir) as c:
        ops = 0
        while ops < 1000:
            roll = rng.random()
            live = [k for k, v in final.items() if v is not None]
            if roll < 0.4 or len(live) < 10:
                name = f"svc-{len(final):04d}"
                obj = c.create(service(name, replicas=1))
            elif roll < 0.85:
                key = rng.choice(live)
                obj = c.update(bump_replicas(objects[key]))
            else:
                key = rng.choice(live)
                namespace, name = key.split("/")
                c.delete("ECSMService", namespace, name)
                final[key] = None
                ops += 1
                continue
            key = h.spec_key(obj)
            objects[key] = obj
            final[key] = obj["metadata"]["resourceVersion"]
            ops += 1
        assert sum(v is None for v in final.values()) > 50
        h.wait_converged(c, run_dir, final, timeout=40)
    processes.kill(controller, signal.SIGTERM)
    assert controller.wait(timeout=10) == 0


def test_a_burst_of_updates_to_one_key_collapses_into_few_reconciles(
        processes: Processes, run_dir: Path) -> None:
    h.start_registry(processes)
    h.start_noop(processes, ECSM_ACTORS_NOOP_DELAY="0.05", ECSM_ACTORS_CONTROLLER_WORKERS="1")
    h.wait_reconciling(run_dir)
    with h.client(run_dir) as c:
        obj = c.create(service("burst", replicas=1))
        key = h.spec_key(obj)
        wait_until(lambda: h.records(run_dir).get(key), timeout=15, what="first reconcile")
        before = len(h.records(run_dir)[key])
        for _ in range(100):
            obj = c.update(bump_replicas(obj))
        h.wait_converged(c, run_dir, {key: obj["metadata"]["resourceVersion"]}, timeout=15)
    reconciles = len(h.records(run_dir)[key]) - before
    assert 1 <= reconciles <= 15, f"100 updates caused {reconciles} reconciles"


def test_the_echo_of_the_controllers_own_status_write_is_not_reconciled(
        processes: Processes, run_dir: Path) -> None:
    h.start_registry(processes)
    h.start_noop(processes, ECSM_ACTORS_CONTROLLER_WORKERS="1")
    h.wait_reconciling(run_dir)  # "probe" reconciled once, its status written
    with h.client(run_dir) as c:
        wait_until(lambda: h.observed(c.get("ECSMService", "default", "probe")),
                   timeout=10, what="the probe's status")
        # One worker, FIFO: had the echo been enqueued, it would run before this one.
        c.create(service("after", replicas=1))
        wait_until(lambda: h.records(run_dir).get("default/after"), timeout=10,
                   what="the second object reconciled")
    assert len(h.records(run_dir)["default/probe"]) == 1
