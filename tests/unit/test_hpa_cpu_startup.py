"""CPU of starting instances, from Kubernetes' documentation of the HPA ("Support for
resource metrics" / ``--horizontal-pod-autoscaler-cpu-initialization-period`` 5 min and
``--horizontal-pod-autoscaler-initial-readiness-delay`` 30 s) and ``groupPods`` in
``replica_calculator.go``: within the initialization period a CPU sample is set aside
unless the instance is ready and the sample covers a full window after it became ready;
an instance without a start time is unready; readiness never filters memory. With ECSM a
running container is ready from its latest start (``uptime``/``startedTime``) and its
first start is ``createdTime``. No sockets, no processes, no sleep."""

from __future__ import annotations

from typing import Any

import pytest

from ecsm_actors.config import load_config
from ecsm_actors.controllers.hpa.replicas import MetricProposal, propose
from ecsm_actors.controllers.hpa.samples import (
    CpuStartup,
    InstanceSample,
    samples_from_containers,
)
from ecsm_actors.controllers.hpa.spec import MetricTarget, ResourceName, Tolerances
from tests.unit.test_hpa_controller import Harness, hpa, service

pytestmark = pytest.mark.timeout(10)

NOW = 1_700_000_000.0
MIB = 1 << 20
DEFAULTS = CpuStartup()  # 300 s, 30 s
TOLERANCE = Tolerances(scale_up=0.1, scale_down=0.1)


def running(cpu: float, *, up: float | None, created_ago: float | None = None,
            memory_pct: float = 50) -> InstanceSample:
    """A running instance whose latest start was ``up`` seconds ago."""
    started = None if up is None else NOW - up
    created = None if created_ago is None else NOW - created_ago
    return InstanceSample(name="c", ready=True, cpu_percent=cpu,
                          memory_usage=memory_pct * MIB, memory_limit=100 * MIB,
                          timestamp=NOW, started=started, created=created)


def propose_for(resource: ResourceName, current: int, samples: list[InstanceSample],
                startup: CpuStartup = DEFAULTS, target: float = 50) -> MetricProposal:
    return propose(MetricTarget(resource=resource, average_utilization=target),
                   current=current, samples=samples, tolerances=TOLERANCE, now=NOW,
                   max_age=60, cpu_startup=startup)


def test_a_cpu_spike_of_a_just_started_instance_does_not_scale_up() -> None:
    # One instance at its target for an hour, one started 10 s ago burning 400 %.
    p = propose_for(ResourceName.CPU, 2, [running(50, up=3600), running(400, up=10)])
    assert (p.ready, p.unready) == (1, 1)
    assert p.utilization == 50
    assert p.replicas == 2


def test_without_the_rule_the_same_spike_would_have_scaled_up() -> None:
    off = CpuStartup(initialization_period=0, readiness_delay=0)
    p = propose_for(ResourceName.CPU, 2, [running(50, up=3600), running(400, up=10)], off)
    assert p.replicas == 9  # (50 + 400) / 2 = 225 % of a 50 % target


def test_a_starting_instance_counts_as_0_percent_when_the_others_want_more() -> None:
    # Kubernetes: on a scale-up, not-yet-ready pods count as 0 % — here the old instance
    # at 150 % wants 3, the starting one pulls the average to 75 %: 2 x 1.5 = 3 still.
    p = propose_for(ResourceName.CPU, 2, [running(150, up=3600), running(900, up=5)])
    assert p.replicas == 3


def test_within_the_period_a_sample_covering_the_readiness_delay_counts() -> None:
    p = propose_for(ResourceName.CPU, 2, [running(100, up=31), running(100, up=3600)])
    assert (p.ready, p.unready, p.replicas) == (2, 0, 4)


def test_within_the_period_a_sample_younger_than_the_readiness_delay_is_set_aside() -> None:
    assert not running(100, up=29).cpu_ready(NOW, DEFAULTS)
    assert running(100, up=30).cpu_ready(NOW, DEFAULTS)


def test_after_the_period_a_restart_is_not_start_up_any_more() -> None:
    # Kubernetes measures the period from the pod's start, not from a container restart:
    # created 10 min ago, restarted 5 s ago → the sample counts.
    assert running(100, up=5, created_ago=600).cpu_ready(NOW, DEFAULTS)


def test_within_the_period_a_restart_is_set_aside_for_the_readiness_delay() -> None:
    assert not running(100, up=5, created_ago=120).cpu_ready(NOW, DEFAULTS)
    assert running(100, up=40, created_ago=120).cpu_ready(NOW, DEFAULTS)


def test_an_instance_without_a_start_time_has_unready_cpu() -> None:
    p = propose_for(ResourceName.CPU, 2, [running(100, up=None)] * 2)
    assert p.replicas is None
    assert "2 not ready or starting" in p.reason


def test_memory_of_a_just_started_instance_is_used() -> None:
    p = propose_for(ResourceName.MEMORY, 2, [running(400, up=1, memory_pct=100)] * 2)
    assert (p.ready, p.unready, p.utilization, p.replicas) == (2, 0, 100, 4)


def test_the_periods_are_settings() -> None:
    young = [running(100, up=10)] * 2
    assert propose_for(ResourceName.CPU, 2, young,
                       CpuStartup(initialization_period=300, readiness_delay=5)).replicas == 4
    assert propose_for(ResourceName.CPU, 2, young,
                       CpuStartup(initialization_period=5, readiness_delay=30)).replicas == 4
    assert propose_for(ResourceName.CPU, 2, young).replicas is None
    cfg = load_config(environ={})
    assert (cfg.hpa.cpu_initialization_period, cfg.hpa.initial_readiness_delay) == (300, 30)


# -- start times as ECSM reports them ------------------------------------------------------


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "status": "running", "cpuUsage": {"total": 10, "cores": [10]},
            **fields}


def test_the_latest_start_is_read_from_uptime_against_the_time_of_the_answer() -> None:
    # ECSM's clock is an hour off: uptime still places the start right on ours.
    [s] = samples_from_containers([container(uptime=42, startedTime="2023-11-14 23:13:20",
                                             createdTime="2023-11-14 23:03:20")],
                                  timestamp=NOW)
    assert s.started == NOW - 42
    assert s.created == NOW - 42 - 600  # created 10 min before it started, on ECSM's clock


def test_without_uptime_the_start_is_read_from_started_time() -> None:
    [s] = samples_from_containers([container(startedTime="2023-11-14 22:13:10")],
                                  timestamp=NOW)  # NOW is 2023-11-14 22:13:20 UTC
    assert s.started == NOW - 10
    assert s.created is None


@pytest.mark.parametrize("fields", [{}, {"uptime": -1}, {"uptime": float("nan")},
                                    {"uptime": "10"}, {"startedTime": ""},
                                    {"startedTime": "yesterday"}])
def test_a_missing_or_garbage_start_time_is_unknown(fields: dict[str, Any]) -> None:
    [s] = samples_from_containers([container(**fields)], timestamp=NOW)
    assert s.started is None
    assert not s.cpu_ready(NOW, DEFAULTS)


def test_typed_ecsm_containers_give_their_start_times_too() -> None:
    class Typed:
        name, status, uptime = "c", "running", 7
        started_time, created_time = "2023-11-14 22:13:13", "2023-11-14 22:13:03"
        cpu_usage = {"total": 5.0}
        memory_usage, memory_limit = 1, 2

    [s] = samples_from_containers([Typed()], timestamp=NOW)
    assert (s.started, s.created) == (NOW - 7, NOW - 17)


# -- through the reconciler, with the configured settings ------------------------------------


def test_the_reconciler_sets_aside_the_cpu_of_containers_that_just_started() -> None:
    h = Harness()
    h.registry.put(service(replicas=2))
    h.registry.put(hpa())
    h.containers.set("svc-1", [400, 400], uptime=3)
    h.sync()
    assert h.target()["spec"]["deploymentStrategy"]["replicas"] == 2
    assert h.condition("ScalingActive") == ("False", "FailedGetResourceMetric")


def test_the_reconciler_honours_a_configured_readiness_delay() -> None:
    h = Harness()
    h.cfg = load_config(environ={}, overrides={"hpa.initial_readiness_delay": 2})
    h.reconciler = h.new_reconciler()
    h.registry.put(service(replicas=2))
    h.registry.put(hpa())
    h.containers.set("svc-1", [100, 100], uptime=3)
    h.sync()
    assert h.target()["spec"]["deploymentStrategy"]["replicas"] == 4
