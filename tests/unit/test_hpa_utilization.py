"""Utilization weighted by limits and rounded as Kubernetes does (``replica_calculator.go``
``GetResourceReplicas`` and ``metrics/utilization.go`` ``GetResourceUtilizationRatio``,
with ECSM's limits where Kubernetes has requests): Σ usage × 100 / Σ limit over the
counted instances, a whole percent rounded down before the ratio is taken, and the
values assumed for missing or unready instances weighted by their limits too. No sockets,
no processes, no sleep."""

from __future__ import annotations

import pytest

from ecsm_actors.controllers.hpa.replicas import MetricProposal, propose
from ecsm_actors.controllers.hpa.samples import InstanceSample
from ecsm_actors.controllers.hpa.spec import MetricTarget, ResourceName, Tolerances

pytestmark = pytest.mark.timeout(10)

NOW = 1_700_000_000.0
MIB = 1 << 20
GIB = 1 << 30
TOLERANCE = Tolerances(scale_up=0.1, scale_down=0.1)


def mem(usage: float | None, limit: int | None, *, ready: bool = True) -> InstanceSample:
    return InstanceSample(name="m", ready=ready, memory_usage=usage, memory_limit=limit,
                          timestamp=NOW)


def cpu(percent: float | None) -> InstanceSample:
    return InstanceSample(name="c", ready=True, cpu_percent=percent, timestamp=NOW,
                          started=NOW - 3600)


def memory(target: float, current: int, samples: list[InstanceSample]) -> MetricProposal:
    return propose(MetricTarget(resource=ResourceName.MEMORY, average_utilization=target),
                   current=current, samples=samples, tolerances=TOLERANCE, now=NOW,
                   max_age=60)


def cpu_proposal(target: float, current: int, samples: list[InstanceSample]
                 ) -> MetricProposal:
    return propose(MetricTarget(resource=ResourceName.CPU, average_utilization=target),
                   current=current, samples=samples, tolerances=TOLERANCE, now=NOW,
                   max_age=60)


def test_in_a_rollout_utilization_is_the_sum_of_usage_over_the_sum_of_limits() -> None:
    # Two revisions: the old one with 256 Mi limits at 78 %, the new one with 1 Gi limits
    # at 19.5 %. The mean of the percentages (48.8 %) would sit inside the tolerance of a
    # 50 % target; Kubernetes' Σ usage / Σ limit is 800 Mi / 2560 Mi = 31 %.
    samples = [mem(200 * MIB, 256 * MIB)] * 2 + [mem(200 * MIB, 1024 * MIB)] * 2
    p = memory(50, 4, samples)
    assert p.utilization == 31
    assert p.replicas == 3  # ceil(0.62 × 4)


def test_utilization_is_rounded_down_to_a_whole_percent_before_the_ratio() -> None:
    # 55.9 % would be a ratio of 1.118, outside a 0.1 tolerance; Kubernetes rounds it to
    # 55 % first: 1.1, inside.
    p = cpu_proposal(50, 4, [cpu(55.9)] * 4)
    assert (p.utilization, p.replicas) == (55, 4)


def test_cpu_figures_of_different_instances_are_summed_before_rounding() -> None:
    assert cpu_proposal(50, 2, [cpu(30.55), cpu(30.44)]).utilization == 30
    assert cpu_proposal(50, 3, [cpu(99.99), cpu(0.01), cpu(0.0)]).utilization == 33


def test_a_missing_instance_on_a_scale_down_weighs_its_own_limit() -> None:
    # Counted: two 4 Gi instances at 10 % (410 Mi). Missing: one 256 Mi instance, at 100 %
    # of ITS limit: (820 Mi + 256 Mi) / 8448 Mi = 12 %. Weighing it like the others
    # (40 % on average) would keep 3 replicas; Kubernetes' weighting allows 1.
    samples = [mem(410 * MIB, 4 * GIB)] * 2 + [mem(None, 256 * MIB)]
    p = memory(50, 3, samples)
    assert (p.utilization, p.missing) == (10, 1)
    assert p.replicas == 1


def test_a_missing_instance_on_a_scale_up_weighs_zero_usage_by_its_limit() -> None:
    # Counted: one 4 Gi instance at 100 %. Missing: one 256 Mi instance at 0:
    # 4096 / 4352 = 94 % → ratio 1.88 → ceil(3.76) = 4 (an unweighted mean says 50 %: 2).
    p = memory(50, 2, [mem(4 * GIB, 4 * GIB), mem(None, 256 * MIB)])
    assert p.replicas == 4


def test_an_unready_instance_on_a_scale_up_weighs_zero_usage_by_its_limit() -> None:
    p = memory(50, 2, [mem(4 * GIB, 4 * GIB), mem(0, 256 * MIB, ready=False)])
    assert (p.unready, p.replicas) == (1, 4)


def test_an_instance_without_a_known_limit_weighs_the_mean_limit() -> None:
    # Two 1 Gi instances at 100 %, a 3 Gi one missing, and one instance the spec asks
    # for that ECSM does not list yet (no limit known: the mean, 5 Gi / 3).
    samples = [mem(GIB, GIB)] * 2 + [mem(None, 3 * GIB)]
    p = memory(50, 4, samples)
    # (2 Gi + 0 + 0) / (2 Gi + 3 Gi + 5/3 Gi) = 30 % → ratio 0.6: a scale-up turned into a
    # scale-down by the conservative values → the current count.
    assert (p.missing, p.unready, p.replicas) == (1, 1, 4)


def test_the_docs_example_still_holds_with_whole_percents() -> None:
    # kubernetes.io: 50 replicas at 90 % of a 75 % target want 60.
    assert cpu_proposal(75, 50, [cpu(90)] * 50).replicas == 60


def test_the_reported_utilization_counts_only_the_instances_with_figures() -> None:
    p = cpu_proposal(50, 4, [cpu(150), cpu(150), cpu(None), cpu(None)])
    assert (p.utilization, p.replicas) == (150, 6)
    assert p.inputs == "2 counted, 2 missing, 0 unready"
