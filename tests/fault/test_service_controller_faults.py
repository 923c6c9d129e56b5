"""The service controller under faults: killed with SIGKILL at random instants during a
rollout of ten services, and cut off from ECSM for a while. Each time the system must
converge to the spec with no duplicate and no orphaned ECSM service."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pytest

from ecsm_actors.api import template_hash
from tests import service_harness as h
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(120)

ROLLOUT = {"maxSurge": 1, "maxUnavailable": 1, "revisionHistoryLimit": 1}


def assert_converged(stack: h.Stack, expected: dict[str, tuple[str, int]]) -> None:
    """Exactly the expected owners on ECSM, each with one current revision at its
    factor (all running) and old revisions at zero within the history limit."""
    names = Counter(svc["name"] for svc in stack.admin.state()["services"])
    assert [n for n, count in names.items() if count > 1] == [], "duplicate ECSM services"
    services = h.ecsm(stack.admin)
    owners = h.owners(stack.admin)
    assert set(owners) == {f"default/{n}" for n in expected}, "orphaned or missing services"
    for name, (image, replicas) in expected.items():
        obj = h.get(stack.registry, name)
        current = f"default.{name}.{template_hash(obj['spec']['template'])}"
        assert obj["spec"]["template"]["image"] == image
        assert services[current]["factor"] == replicas
        assert services[current]["statuses"] == ["running"] * replicas
        olds = [n for n in owners[f"default/{name}"] if n != current]
        assert len(olds) <= ROLLOUT["revisionHistoryLimit"]
        assert [services[n]["factor"] for n in olds] == [0] * len(olds), (name, services)
        assert obj["status"]["underlyingServiceIDs"][0] == services[current]["id"]


@pytest.mark.timeout(150)
def test_twenty_kills_during_a_rollout_of_ten_services_lose_and_duplicate_nothing(
        processes: Processes, run_dir: Path) -> None:
    stack = h.start_stack(processes, nodes=4, start_delay=0.3)
    names = [f"svc-{i}" for i in range(10)]
    for i, name in enumerate(names):
        stack.registry.apply(h.service(name, replicas=1 + i % 3, rollout=ROLLOUT))
    wait_until(lambda: all(h.settled(stack.registry, n) for n in names), timeout=40,
               what="ten services settled")

    rng = random.Random(20)
    expected: dict[str, tuple[str, int]] = {}
    for i, name in enumerate(names):
        expected[name] = ("app@1.1", 2 + i % 3)
        stack.registry.apply(h.service(name, image="app@1.1", replicas=2 + i % 3,
                                       rollout=ROLLOUT))
    deleted = ["svc-8", "svc-9"]
    for kill in range(20):
        # A random instant of the rollout: the controller lives 0.05-0.5 s each time
        # (its start included), so the rollout spans the kills and ends after them.
        time.sleep(rng.uniform(0.05, 0.5))
        assert stack.controller is not None
        processes.kill(stack.controller)
        stack.controller.wait(timeout=10)
        if kill == 5:
            for name in deleted:  # deleted while the controller is down
                stack.registry.delete("ECSMService", "default", name)
                expected.pop(name)
        if kill == 10:  # and a second template change mid-way
            for name in names[:4]:
                expected[name] = ("app@2.0", 2)
                stack.registry.apply(h.service(name, image="app@2.0", replicas=2,
                                               rollout=ROLLOUT))
        stack.start_controller()
    wait_until(lambda: all(h.gone(stack.registry, n) for n in deleted), timeout=30,
               what="deleted services gone")
    wait_until(lambda: all(h.settled(stack.registry, n) for n in expected), timeout=60,
               what="every service settled after the kills")
    try:
        wait_until(lambda: _converged(stack, expected), timeout=20, what="ECSM converged")
    finally:
        assert_converged(stack, expected)
    stack.close()


def _converged(stack: h.Stack, expected: dict[str, tuple[str, int]]) -> bool:
    try:
        assert_converged(stack, expected)
    except AssertionError:
        return False
    return True


def sweep_failing_lines(run_dir: Path) -> int:
    return sum(log.read_text(errors="replace").count("sweep failing")
               for log in (run_dir / "test-logs").glob("controller-service.*.log"))


def test_an_ecsm_partition_is_reported_and_healed(processes: Processes, run_dir: Path) -> None:
    stack = h.start_stack(processes, nodes=3, start_delay=0.2,
                          ECSM_ACTORS_SERVICE_UNAVAILABLE_THRESHOLD="2")
    stack.registry.apply(h.service("web", replicas=2, rollout=ROLLOUT))
    stack.registry.apply(h.service("db", image="db@1.0", replicas=1))
    wait_until(lambda: h.settled(stack.registry, "web") and h.settled(stack.registry, "db"),
               timeout=20, what="settled before the partition")
    stack.admin.faults(partition=True)
    try:
        stack.registry.apply(h.service("web", image="app@1.1", replicas=3, rollout=ROLLOUT))
        stack.registry.apply(h.service("new", replicas=1))
        for name in ("web", "new"):  # the ones being reconciled say it each
            def unavailable(n: str = name) -> bool:
                return h.condition(stack.registry, n, "Degraded") == ("True", "EcsmUnavailable")
            wait_until(unavailable, timeout=20, what=f"{name} Degraded/EcsmUnavailable")
        # the settled one is left to the drift sweep, whose failure is said once, not
        # once per service
        wait_until(lambda: sweep_failing_lines(run_dir) == 1, timeout=20,
                   what="the failing sweep reported")
        assert h.condition(stack.registry, "db", "Degraded") == ("False", "AsExpected")
        assert h.ecsm(stack.admin, "default.new.") == {}
    finally:
        stack.admin.reset_faults()
    wait_until(lambda: all(h.settled(stack.registry, n) for n in ("web", "db", "new")),
               timeout=30, what="settled after the partition healed")
    for name in ("web", "db", "new"):
        assert h.condition(stack.registry, name, "Degraded") == ("False", "AsExpected")
    assert sweep_failing_lines(run_dir) == 1
    wait_until(lambda: _converged(stack, {"web": ("app@1.1", 3), "db": ("db@1.0", 1),
                                          "new": ("app@1.0", 1)}),
               timeout=15, what="ECSM converged")
    stack.close()
