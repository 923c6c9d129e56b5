"""The HPA when ECSM's usage figures are garbage: non-finite, negative or absurd figures
are missing metrics (treated conservatively), never a crash or a wild scale."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.unit.test_hpa_controller import Harness, hpa, service

pytestmark = pytest.mark.timeout(10)

GARBAGE = [math.inf, -math.inf, math.nan, 1e300, 10 ** 400, -5.0, True, "90"]


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest.mark.parametrize("figure", GARBAGE, ids=repr)
def test_a_garbage_cpu_figure_is_a_missing_metric(h: Harness, figure: Any) -> None:
    h.registry.put(service(replicas=2))
    h.registry.put(hpa())
    h.containers.set("svc-1", [100, 100])
    h.containers.by_service["svc-1"][0]["cpuUsage"]["total"] = figure
    h.sync()
    # One believable instance at 100 % of a 50 % target, one missing (counted as 0 % on a
    # scale-up): the average is 50 %, so nothing moves.
    assert h.target()["spec"]["deploymentStrategy"]["replicas"] == 2
    assert h.status()["currentMetrics"][0]["resource"]["current"] == \
        {"averageUtilization": 100.0}


@pytest.mark.parametrize("usage,limit", [(1 << 70, 512 << 20), (1 << 40, 1), (64, math.inf),
                                         (math.nan, 512 << 20)])
def test_a_garbage_memory_figure_is_a_missing_metric(h: Harness, usage: Any,
                                                     limit: Any) -> None:
    h.registry.put(service(replicas=2))
    h.registry.put(hpa(metrics=[{"type": "Resource", "resource": {
        "name": "memory", "target": {"type": "Utilization", "averageUtilization": 50}}}]))
    h.containers.set("svc-1", [10, 10])
    for c in h.containers.by_service["svc-1"]:
        c["memoryUsage"], c["memoryLimit"] = usage, limit
    h.sync()
    assert h.target()["spec"]["deploymentStrategy"]["replicas"] == 2
    assert h.condition("ScalingActive") == ("False", "FailedGetResourceMetric")
