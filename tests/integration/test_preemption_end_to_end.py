"""Preemption end to end: simulator (three nodes of 1 GiB for containers) + registry +
``controller service`` as real processes. Two low-priority services fill the nodes; a
critical one takes the room of the lowest, which comes back when the critical one goes;
a service that may not preempt waits and says why."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.cli import desired_views
from tests import service_harness as h
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(90)

NODES = ["node-1", "node-2", "node-3"]


@pytest.fixture(scope="module")
def stack() -> Iterator[h.Stack]:
    run_dir = Path(tempfile.mkdtemp(prefix="ea-preempt-", dir="/tmp"))
    run_dir.chmod(0o700)
    procs = Processes(run_dir)
    try:
        s = h.start_stack(procs, nodes=3, start_delay=0.2, controller=False)
        for n in NODES:
            s.admin.set_node_memory(n, 1 << 30)
        s.start_controller()
        yield s
        s.close()
    finally:
        procs.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


def service(name: str, priority: int, replicas: int = 3, **spec: Any) -> dict[str, Any]:
    obj = h.service(name, replicas=replicas)
    obj["spec"]["template"]["resources"] = {"limits": {"memory": "512Mi"}}
    obj["spec"].update(priority=priority, **spec)
    return obj


def condition(stack: h.Stack, name: str, type_: str) -> dict[str, Any]:
    for c in (h.get(stack.registry, name).get("status") or {}).get("conditions") or ():
        if c["type"] == type_:
            return dict(c)
    return {}


def running(stack: h.Stack, name: str) -> int:
    return h.totals(stack.admin, f"default.{name}.")[1]


@pytest.fixture(scope="module")
def filled(stack: h.Stack) -> h.Stack:
    stack.registry.apply(service("low", 1))
    stack.registry.apply(service("mid", 5))
    wait_until(lambda: running(stack, "low") == running(stack, "mid") == 3, timeout=20,
               what="low and mid running 3 each: the nodes are full")
    return stack


def test_a_critical_service_preempts_the_lowest_and_gives_its_room_back(
        filled: h.Stack) -> None:
    s = filled
    s.registry.apply(service("crit", 1000))
    wait_until(lambda: h.settled(s.registry, "crit") and running(s, "crit") == 3,
               timeout=20, what="crit Available on full nodes")
    preempted = condition(s, "low", "Preempted")
    assert preempted["status"] == "True"
    assert "3 instance(s) held for default/crit (priority 1000)" in preempted["message"]
    assert running(s, "mid") == 3 and running(s, "low") == 0
    assert h.get(s.registry, "low")["spec"]["deploymentStrategy"]["replicas"] == 3
    cols, rows = desired_views.table(h.KIND, [h.get(s.registry, "crit")], wide=True,
                                     all_namespaces=False)
    assert dict(zip(cols, rows[0], strict=True))["PRIORITY"] == 1000
    assert "default/low" in desired_views.describe_service(h.get(s.registry, "crit")).split(
        "Preemptions given:")[1]

    s.registry.delete(h.KIND, "default", "crit")
    wait_until(lambda: h.gone(s.registry, "crit") and running(s, "low") == 3
               and condition(s, "low", "Preempted").get("status") == "False",
               timeout=20, what="low restored to its spec once crit is gone")
    assert running(s, "mid") == 3
    assert {o: len(v) for o, v in h.owners(s.admin).items()} == {
        "default/low": 1, "default/mid": 1}


def test_a_service_that_may_not_preempt_waits_and_says_why(filled: h.Stack) -> None:
    s = filled
    wait_until(lambda: running(s, "low") == running(s, "mid") == 3, timeout=20,
               what="the nodes full again")
    s.registry.apply(service("patient", 1000, replicas=1, preemptionPolicy="Never"))
    wait_until(lambda: condition(s, "patient", "ReplicaFailure").get("status") == "True",
               timeout=20, what="patient told why it waits")
    message = condition(s, "patient", "ReplicaFailure")["message"]
    assert "1 instance(s) of 512 MiB do not fit" in message and "Never" in message
    assert running(s, "low") == running(s, "mid") == 3
    assert condition(s, "low", "Preempted").get("status") != "True"
