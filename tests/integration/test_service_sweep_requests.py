"""An idle service controller costs ECSM the pages of one sweep per drift interval, not one
request per service: real simulator, registry and ``controller service`` processes, ECSM's
load read from the simulator's request counter."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors.ecsm.clientset import Clientset
from tests import service_harness as h
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(90)

SERVICES = 24
DRIFT = float(h.FAST["ECSM_ACTORS_SERVICE_DRIFT_INTERVAL"])


@pytest.fixture(scope="module")
def stack() -> Iterator[h.Stack]:
    run_dir = Path(tempfile.mkdtemp(prefix="ea-sweep-", dir="/tmp"))
    run_dir.chmod(0o700)
    procs = Processes(run_dir)
    try:
        s = h.start_stack(procs, nodes=4, start_delay=0.05)
        yield s
        s.close()
    finally:
        procs.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


def ecsm_requests_during(stack: h.Stack, seconds: float) -> int:
    """The requests ECSM answered over ``seconds``, minus this function's own polls."""
    polls = 1
    first = stack.admin.health()["requests"]
    end = time.monotonic() + seconds

    def window_over() -> bool:
        nonlocal polls
        polls += 1
        stack.admin.health()
        return time.monotonic() >= end

    wait_until(window_over, timeout=seconds + 10, interval=0.25, what="window over")
    polls += 1
    return stack.admin.health()["requests"] - first - polls + 1


def test_idle_services_cost_one_paged_sweep_per_drift_interval(stack: h.Stack) -> None:
    names = [f"idle-{i}" for i in range(SERVICES)]
    for name in names:
        stack.registry.apply(h.service(name, replicas=1))
    for name in names:
        wait_until(lambda n=name: h.settled(stack.registry, n), timeout=30,
                   what=f"{name} settled")
    intervals = 4
    requests = ecsm_requests_during(stack, intervals * DRIFT)
    # a sweep is one page of services (24 < 100) and one of nodes; one more sweep may
    # start within the window's edges. One re-check per service would be 24 per interval.
    assert requests <= 2 * (intervals + 1), requests


def test_a_service_deleted_on_ecsm_among_idle_ones_is_recreated_by_the_sweep(
        stack: h.Stack) -> None:
    stack.registry.apply(h.service("victim", replicas=2))
    wait_until(lambda: h.settled(stack.registry, "victim"), timeout=30, what="settled")
    [svc] = h.ecsm(stack.admin, "default.victim.").values()
    with Clientset.from_config(h.config(stack.processes.run_dir)) as client:
        client.services.delete(svc["id"])
    wait_until(lambda: h.totals(stack.admin, "default.victim.") == (2, 2),
               timeout=10 * DRIFT + 5, what="service recreated")
    [again] = h.ecsm(stack.admin, "default.victim.").values()
    assert again["id"] != svc["id"]
