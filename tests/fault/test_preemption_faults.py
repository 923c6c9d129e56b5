"""Preemption under SIGKILL: the service controller killed again and again while a
critical service preempts, shrinks and goes away on full nodes (ECSM answering slowly,
so each kill lands in the middle of a pass). The end state is the one without kills:
the lowest-priority service alone gives room, exactly as much as needed, and gets it back;
no ECSM service is duplicated or orphaned."""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests import service_harness as h
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(60)

NODES = ["node-1", "node-2", "node-3"]


def service(name: str, priority: int, replicas: int = 3) -> dict[str, Any]:
    obj = h.service(name, replicas=replicas)
    obj["spec"]["template"]["resources"] = {"limits": {"memory": "512Mi"}}
    obj["spec"]["priority"] = priority
    return obj


def state(stack: h.Stack) -> tuple[dict[str, int], dict[str, int]]:
    """(running instances per owner, instances held by preemption records per owner)."""
    run = {o.split("/")[1]: 0 for o in h.owners(stack.admin)}
    for name, svc in h.ecsm(stack.admin).items():
        run[name.split(".")[1]] += svc["statuses"].count("running")
    held = {}
    for obj in stack.registry.list(h.KIND).items:
        records = (obj.get("status") or {}).get("preemptions") or ()
        if records:
            held[obj["metadata"]["name"]] = sum(r["instances"] for r in records)
    return {k: v for k, v in run.items() if v}, held


def no_duplicates(stack: h.Stack) -> None:
    names = Counter(svc["name"] for svc in stack.admin.state()["services"])
    assert [n for n, count in names.items() if count > 1] == [], "duplicate ECSM services"


def kill_repeatedly(stack: h.Stack, processes: Processes, rng: random.Random,
                    kills: int) -> None:
    for _ in range(kills):
        time.sleep(rng.uniform(0.3, 0.7))  # controller start ≈ 0.3 s, then passes
        assert stack.controller is not None
        processes.kill(stack.controller)
        stack.controller.wait(timeout=10)
        stack.start_controller()


def settle_on(stack: h.Stack, expected: tuple[dict[str, int], dict[str, int]],
              what: str) -> None:
    try:
        wait_until(lambda: state(stack) == expected, timeout=15, what=what)
    except AssertionError as e:
        raise AssertionError(f"{e}: {state(stack)} on ECSM {h.ecsm(stack.admin)}, nodes "
                             f"{[n.get('memory') for n in stack.admin.state()['nodes']]}, "
                             f"{[o.get('status') for o in stack.registry.list(h.KIND).items]}"
                             ) from e
    finally:
        no_duplicates(stack)


def test_kills_during_preemption_shrink_and_deletion_end_as_without_them(
        processes: Processes, run_dir: Path) -> None:
    stack = h.start_stack(processes, nodes=3, start_delay=0.1, controller=False)
    try:
        preempt_under_kills(stack, processes)
    finally:
        stack.close()


def preempt_under_kills(stack: h.Stack, processes: Processes) -> None:
    for n in NODES:
        stack.admin.set_node_memory(n, 1 << 30)
    stack.start_controller()
    stack.registry.apply(service("low", 1))
    stack.registry.apply(service("mid", 5))
    settle_on(stack, ({"low": 3, "mid": 3}, {}), "the nodes full")
    stack.admin.faults(latency=0.03)  # every ECSM call takes 30 ms: kills land mid-pass
    rng = random.Random(12)

    stack.registry.apply(service("crit", 1000))
    kill_repeatedly(stack, processes, rng, kills=6)
    settle_on(stack, ({"crit": 3, "mid": 3}, {"low": 3}), "crit placed, low preempted")

    stack.registry.apply(service("crit", 1000, replicas=1))
    kill_repeatedly(stack, processes, rng, kills=5)
    settle_on(stack, ({"crit": 1, "low": 2, "mid": 3}, {"low": 1}), "low partly back")

    stack.registry.delete(h.KIND, "default", "crit")
    kill_repeatedly(stack, processes, rng, kills=5)
    settle_on(stack, ({"low": 3, "mid": 3}, {}), "crit gone, low back to its spec")
    assert set(h.owners(stack.admin)) == {"default/low", "default/mid"}, "orphans"
    mid = h.get(stack.registry, "mid")
    assert "preemptions" not in mid["status"], "mid (not the lowest) was never a victim"
