"""The HPA end to end: registry + ECSM simulator + service and HPA controller processes.

The HPA controller syncs every 0.5 s and the HPAs use a 3 s scale-down window, so the
whole story (rise, bound, hold, fall) plays in seconds. Load is driven on the simulator
(``SimulatorAdmin.set_load``): a container's cpuUsage.total ≈ load / running instances.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ecsm_actors.ecsm.simulator.admin import SimulatorAdmin
from ecsm_actors.registry.client import RegistryClient
from tests import hpa_harness as h
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def stack(processes: Processes) -> Iterator[tuple[RegistryClient, SimulatorAdmin]]:
    c, admin = h.start_stack(processes)
    yield c, admin
    c.close()
    admin.close()


def test_load_raises_replicas_within_bounds_and_only_the_window_delays_the_fall(
        stack: tuple[RegistryClient, SimulatorAdmin]) -> None:
    c, admin = stack
    sid = h.declare(c, admin, "web", target=50, max_replicas=4, down_window=3)

    # 140 % of total cpu on one instance (±3 % noise): three instances at ~47 % each.
    admin.set_load(sid, cpu=140.0)
    wait_until(lambda: h.replicas(c, "web") == 3, timeout=10 * h.SYNC + 5,
               what="replicas rising to 3")
    wait_until(lambda: h.running_count(admin, sid) == 3, timeout=15, what="3 running")
    usage = h.running_usage(admin, sid)
    assert all(40 <= u <= 60 for u in usage), f"per-instance usage {usage} not near 50%"
    assert h.condition(c, "web", "ScalingActive") == ("True", "ValidMetricFound")

    # 400 % would want 8: maxReplicas holds it at 4, and the status says so.
    admin.set_load(sid, cpu=400.0)
    wait_until(lambda: h.replicas(c, "web") == 4, timeout=10, what="replicas at max 4")
    wait_until(lambda: h.condition(c, "web", "ScalingLimited") == ("True", "TooManyReplicas"),
               timeout=10, what="ScalingLimited/TooManyReplicas")
    h.hold(lambda: h.replicas(c, "web") == 4, 4 * h.SYNC)
    status = h.hpa_status(c, "web")
    assert status["desiredReplicas"] == 4
    assert status["currentMetrics"][0]["resource"]["name"] == "cpu"

    # The load drops: every recommendation of the last 3 s still says 4, so nothing moves
    # before 3 s minus one sync period; then the minimum (1) is reached.
    admin.set_load(sid, cpu=5.0)
    dropped = time.monotonic()
    h.hold(lambda: h.replicas(c, "web") == 4, 3.0 - h.SYNC - 0.2)
    wait_until(lambda: h.replicas(c, "web") == 1, timeout=15, what="replicas falling to 1")
    assert time.monotonic() - dropped >= 3.0 - h.SYNC
    # The target is written before the HPA status: wait for the status to catch up.
    last = wait_until(lambda: h.hpa_status(c, "web")["scaleEvents"][-1]["replicaChange"] == -3
                      and h.hpa_status(c, "web")["scaleEvents"][-1], timeout=5,
                      what="the scale-down in the HPA's scale events")
    assert "below target" in last["reason"]


def test_a_paused_hpa_does_nothing(stack: tuple[RegistryClient, SimulatorAdmin]) -> None:
    c, admin = stack
    sid = h.declare(c, admin, "idle", paused=True)
    admin.set_load(sid, cpu=400.0)
    wait_until(lambda: h.condition(c, "idle", "ScalingActive") == ("False", "ScalingPaused"),
               timeout=10, what="ScalingPaused condition")
    rv = c.get("ECSMHpa", "default", "idle")["metadata"]["resourceVersion"]
    h.hold(lambda: h.replicas(c, "idle") == 1, 6 * h.SYNC)
    # Nothing changes, so nothing is written: a paused HPA does not churn the registry.
    assert c.get("ECSMHpa", "default", "idle")["metadata"]["resourceVersion"] == rv

    # Unpausing lets it act at once.
    obj = c.get("ECSMHpa", "default", "idle")
    obj["spec"]["paused"] = False
    c.update(obj)
    wait_until(lambda: h.replicas(c, "idle") == 4, timeout=10, what="scaling after unpause")
