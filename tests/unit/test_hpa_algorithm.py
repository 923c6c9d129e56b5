"""The HPA algorithm, case by case, from the Kubernetes documentation of the HPA.

Sources (kubernetes.io, "Horizontal Pod Autoscaling"): "Algorithm details" (ratio,
ceil, tolerance, missing metrics, not-yet-ready pods, direction never flipped, several
metrics → largest), "Configurable scaling behavior" (Pods/Percent policies per period,
selectPolicy Max/Min/Disabled, stabilization windows, defaults) and the autoscaling/v2
API reference. No sockets, no processes, no sleep: the clock is a number.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from ecsm_actors.controllers.hpa.algorithm import DecisionCode, History, decide
from ecsm_actors.controllers.hpa.behavior import stabilize
from ecsm_actors.controllers.hpa.history import (
    Recommendation,
    ScaleEvent,
    compact_recommendations,
    dump_recommendations,
    dump_scale_events,
    format_time,
    load_recommendations,
    load_scale_events,
    parse_time,
)
from ecsm_actors.controllers.hpa.replicas import propose
from ecsm_actors.controllers.hpa.samples import InstanceSample, samples_from_containers
from ecsm_actors.controllers.hpa.spec import MetricTarget, ResourceName, Tolerances, parse_spec
from ecsm_actors.errors import TerminalError

NOW = 1_700_000_000.0
MIB = 1 << 20
TOLERANCE = Tolerances(scale_up=0.1, scale_down=0.1)


def cpu(target: float) -> MetricTarget:
    return MetricTarget(resource=ResourceName.CPU, average_utilization=target)


#: Started an hour ago: past Kubernetes' CPU initialization period.
STARTED = NOW - 3600


def ready(value: float) -> InstanceSample:
    return InstanceSample(name="c", ready=True, cpu_percent=value, timestamp=NOW,
                          started=STARTED)


def missing() -> InstanceSample:
    return InstanceSample(name="m", ready=True, cpu_percent=None, timestamp=NOW,
                          started=STARTED)


def unready() -> InstanceSample:
    return InstanceSample(name="u", ready=False, cpu_percent=None, timestamp=NOW)


def calc(target: float, current: int, samples: list[InstanceSample],
         tolerance: float = 0.1) -> int | None:
    return propose(cpu(target), current=current, samples=samples,
                   tolerances=Tolerances(scale_up=tolerance, scale_down=tolerance),
                   now=NOW, max_age=60.0).replicas


# --- replica calculation: (description, target %, current, samples, tolerance, expected) ---
REPLICA_CASES: list[tuple[str, float, int, list[InstanceSample], float, int | None]] = [
    ("twice the target doubles the replicas", 50, 2, [ready(100)] * 2, 0.1, 4),
    ("half the target halves the replicas", 50, 4, [ready(25)] * 4, 0.1, 2),
    ("the docs' 50 replicas at 90% for a 75% target become 60", 75, 50, [ready(90)] * 50,
     0.1, 60),
    ("the proposal is rounded up", 50, 3, [ready(70)] * 3, 0.1, 5),
    ("a ratio inside the tolerance keeps the count", 50, 4, [ready(54)] * 4, 0.1, 4),
    ("a ratio exactly at the tolerance keeps the count", 50, 4, [ready(55)] * 4, 0.1, 4),
    ("a ratio just past the tolerance scales", 50, 4, [ready(56)] * 4, 0.1, 5),
    ("a below-target ratio inside the tolerance keeps the count", 50, 4, [ready(46)] * 4,
     0.1, 4),
    ("a per-object tolerance of 0 scales on any deviation", 50, 4, [ready(52)] * 4, 0.0, 5),
    ("a wide per-object tolerance absorbs 40%", 50, 4, [ready(70)] * 4, 0.5, 4),
    ("missing metrics count as 0% on a scale-up", 50, 4,
     [ready(150), ready(150), missing(), missing()], 0.1, 6),
    ("missing metrics never flip a scale-up into a scale-down", 50, 4,
     [ready(60), missing(), missing(), missing()], 0.1, 4),
    ("missing metrics count as 100% on a scale-down", 50, 4,
     [ready(10), ready(10), ready(10), missing()], 0.1, 3),
    ("missing metrics never flip a scale-down into a scale-up", 50, 2,
     [ready(40), missing()], 0.1, 2),
    ("missing metrics count as the target when it is above 100%", 200, 4,
     [ready(30), ready(30), ready(30), missing()], 0.1, 2),
    ("unready instances count as 0% on a scale-up", 50, 4,
     [ready(150), ready(150), unready(), unready()], 0.1, 6),
    ("unready instances never flip a scale-up into a scale-down", 50, 4,
     [ready(60), ready(60), unready(), unready()], 0.1, 4),
    ("unready instances are ignored on a scale-down", 50, 4,
     [ready(10), ready(10), unready(), unready()], 0.1, 1),
    ("instances not listed by ECSM yet count as unready", 50, 4, [ready(60), ready(60)],
     0.1, 4),
    ("no instance at all gives no proposal", 50, 2, [], 0.1, None),
    ("only unready instances give no proposal", 50, 2, [unready(), unready()], 0.1, None),
    ("only instances without metrics give no proposal", 50, 2, [missing(), missing()],
     0.1, None),
]


@pytest.mark.parametrize(("target", "current", "samples", "tolerance", "expected"),
                         [c[1:] for c in REPLICA_CASES], ids=[c[0] for c in REPLICA_CASES])
def test_replica_calculation(target: float, current: int, samples: list[InstanceSample],
                             tolerance: float, expected: int | None) -> None:
    assert calc(target, current, samples, tolerance) == expected


def test_memory_utilization_is_usage_over_limit() -> None:
    samples = [InstanceSample(name=f"c{i}", ready=True, memory_usage=400 * MIB,
                              memory_limit=512 * MIB, timestamp=NOW) for i in range(2)]
    p = propose(MetricTarget(resource=ResourceName.MEMORY, average_utilization=50),
                current=2, samples=samples, tolerances=TOLERANCE, now=NOW, max_age=60)
    assert p.utilization == 78  # 78.125 rounded down, as Kubernetes rounds it
    assert p.replicas == 4


def test_memory_without_a_limit_is_a_missing_metric() -> None:
    s = InstanceSample(name="c", ready=True, memory_usage=400 * MIB, memory_limit=0,
                       timestamp=NOW)
    assert s.utilization(ResourceName.MEMORY, now=NOW, max_age=60) is None


def test_a_stale_sample_is_a_missing_metric() -> None:
    old = InstanceSample(name="c", ready=True, cpu_percent=10, timestamp=NOW - 61,
                         started=STARTED)
    # One fresh instance far below target, one stale: the stale one counts as 100%.
    assert calc(50, 2, [ready(10), old]) == 2


def test_samples_are_read_from_ecsm_containers() -> None:
    raw = [
        {"name": "a", "status": "running", "cpuUsage": {"total": 42.5, "cores": [42.5]},
         "memoryUsage": 100, "memoryLimit": 400},
        {"name": "b", "status": "created", "cpuUsage": {"total": 0, "cores": []},
         "memoryUsage": 0, "memoryLimit": 400},
        {"name": "c", "status": "running", "cpuUsage": None, "memoryUsage": None},
    ]
    a, b, c = samples_from_containers(raw, timestamp=NOW)
    assert (a.ready, a.cpu_percent, a.utilization(ResourceName.MEMORY, now=NOW, max_age=1)) \
        == (True, 42.5, 25.0)
    assert not b.ready
    assert c.ready and c.cpu_percent is None and c.memory_usage is None


# --- the whole decision ------------------------------------------------------------------

def hpa(**spec: Any) -> Any:
    base: dict[str, Any] = {
        "scaleTargetRef": {"kind": "ECSMService", "name": "web"},
        "minReplicas": 1, "maxReplicas": 100,
        "metrics": [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
    }
    base.update(spec)
    return parse_spec(base, default_tolerance=0.1, downscale_stabilization=300.0)


def rules(window: float = 0, select: str = "Max", *policies: tuple[str, int, int]) -> dict:
    out: dict[str, Any] = {"stabilizationWindowSeconds": window, "selectPolicy": select}
    if policies:
        out["policies"] = [{"type": t, "value": v, "periodSeconds": p} for t, v, p in policies]
    return out


def run(spec: Any, current: int, samples: list[InstanceSample], *,
        recs: tuple[Recommendation, ...] = (), events: tuple[ScaleEvent, ...] = (),
        now: float = NOW) -> Any:
    history = History(recommendations=recs, scale_events=events)
    samples = [dataclasses.replace(s, timestamp=now) for s in samples]  # read just now
    return decide(spec, current=current, samples=samples, history=history, now=now,
                  metric_max_age=60.0)


def at(utilization: float, n: int) -> list[InstanceSample]:
    return [ready(utilization)] * n


def conditions(decision: Any) -> dict[str, tuple[bool, str]]:
    return {c.type: (c.status, c.reason) for c in decision.conditions}


NO_WINDOWS = {"scaleDown": rules(0)}


def test_a_scale_up_is_immediate_by_default() -> None:
    d = run(hpa(), 2, at(100, 2))
    assert (d.code, d.desired_replicas, d.rescale) == (DecisionCode.SCALE_UP, 4, True)
    assert conditions(d)["AbleToScale"] == (True, "SucceededRescale")
    assert conditions(d)["ScalingActive"] == (True, "ValidMetricFound")
    assert len(d.conditions) == len(conditions(d))  # one per type
    assert [e.change for e in d.scale_events] == [2]
    assert d.scale_events[0].reason.startswith("2 -> 4: cpu resource utilization")
    assert d.scaled_at == NOW


def test_the_maximum_bounds_a_scale_up() -> None:
    d = run(hpa(maxReplicas=8), 5, at(150, 5))
    assert d.desired_replicas == 8
    assert conditions(d)["ScalingLimited"] == (True, "TooManyReplicas")


def test_the_minimum_bounds_a_scale_down() -> None:
    d = run(hpa(minReplicas=3, behavior=NO_WINDOWS), 6, at(5, 6))
    assert d.desired_replicas == 3
    assert conditions(d)["ScalingLimited"] == (True, "TooFewReplicas")


def test_a_target_above_the_maximum_is_brought_down_at_once() -> None:
    d = run(hpa(maxReplicas=4), 9, at(50, 9))
    assert (d.desired_replicas, d.reason) == (4, "Current number of replicas above "
                                                 "Spec.MaxReplicas")


def test_a_target_below_the_minimum_is_brought_up_at_once() -> None:
    d = run(hpa(minReplicas=3), 1, at(50, 1))
    assert (d.desired_replicas, d.reason) == (3, "Current number of replicas below "
                                                 "Spec.MinReplicas")


def test_a_target_at_zero_replicas_disables_autoscaling() -> None:
    d = run(hpa(), 0, [])
    assert (d.code, d.desired_replicas) == (DecisionCode.DISABLED, 0)
    assert conditions(d)["ScalingActive"] == (False, "ScalingDisabled")


def test_no_metrics_means_no_scaling_and_says_why() -> None:
    d = run(hpa(), 3, [unready()] * 3, recs=(Recommendation(timestamp=NOW - 5, replicas=3),))
    assert (d.code, d.desired_replicas, d.rescale) == (DecisionCode.NO_METRICS, 3, False)
    active, reason = conditions(d)["ScalingActive"]
    assert (active, reason) == (False, "FailedGetResourceMetric")
    assert "not ready" in d.reason
    assert d.recommendations == (Recommendation(timestamp=NOW - 5, replicas=3),)


TWO_METRICS = [
    {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 50}}},
    {"type": "Resource", "resource": {"name": "memory", "target": {
        "type": "Utilization", "averageUtilization": 50}}},
]


def sample(cpu_pct: float | None, mem_pct: float | None) -> InstanceSample:
    return InstanceSample(name="c", ready=True, cpu_percent=cpu_pct,
                          memory_usage=None if mem_pct is None else mem_pct * MIB,
                          memory_limit=100 * MIB, timestamp=NOW, started=STARTED)


def test_with_several_metrics_the_largest_proposal_wins() -> None:
    d = run(hpa(metrics=TWO_METRICS), 2, [sample(75, 150)] * 2)  # cpu → 3, memory → 6
    assert [p.replicas for p in d.proposals] == [3, 6]
    assert d.desired_replicas == 6
    assert "memory" in d.reason


def test_an_invalid_metric_blocks_a_scale_down_of_the_others() -> None:
    d = run(hpa(metrics=TWO_METRICS, behavior=NO_WINDOWS), 4, [sample(5, None)] * 4)
    assert (d.code, d.desired_replicas) == (DecisionCode.NO_METRICS, 4)
    assert conditions(d)["ScalingActive"] == (False, "FailedGetResourceMetric")


def test_an_invalid_metric_does_not_block_a_scale_up_of_the_others() -> None:
    d = run(hpa(metrics=TWO_METRICS), 2, [sample(100, None)] * 2)
    assert d.desired_replicas == 4


# --- behavior policies: (description, behavior, current, proposal utilization, expected) ---
def up(*policies: tuple[str, int, int], select: str = "Max") -> dict:
    return {"scaleUp": rules(0, select, *policies)}


def down(*policies: tuple[str, int, int], select: str = "Max") -> dict:
    return {"scaleDown": rules(0, select, *policies)}


POLICY_CASES: list[tuple[str, dict, int, float, int]] = [
    ("Pods 4 per 60s adds at most 4", up(("Pods", 4, 60)), 2, 500, 6),
    ("Percent 100 per 60s at most doubles", up(("Percent", 100, 60)), 2, 500, 4),
    ("Percent rounds a scale-up limit up", up(("Percent", 10, 60)), 3, 500, 4),
    ("the default scale-up takes the larger of 100% and 4 Pods (small)", {}, 2, 500, 6),
    ("the default scale-up takes the larger of 100% and 4 Pods (large)", {}, 10, 500, 20),
    ("selectPolicy Min takes the smaller change", up(("Percent", 100, 60), ("Pods", 4, 60),
                                                     select="Min"), 10, 500, 14),
    ("selectPolicy Disabled forbids scaling up", up(("Pods", 4, 60), select="Disabled"),
     2, 500, 2),
    ("the docs' 80 replicas lose 8 with Percent 10 / Pods 4", down(("Pods", 4, 60),
                                                                   ("Percent", 10, 60)),
     80, 1, 72),
    ("the docs' 72 replicas lose 8 again (7.2 rounded up)", down(("Pods", 4, 60),
                                                                ("Percent", 10, 60)),
     72, 1, 64),
    ("under 40 replicas the Pods policy removes 4", down(("Pods", 4, 60),
                                                         ("Percent", 10, 60)), 30, 1, 26),
    ("selectPolicy Min on scale-down removes the fewest", down(("Pods", 4, 60),
                                                               ("Percent", 10, 60),
                                                               select="Min"), 80, 1, 76),
    ("selectPolicy Disabled forbids scaling down", down(("Pods", 4, 60), select="Disabled"),
     5, 1, 5),
]


@pytest.mark.parametrize(("behavior", "current", "utilization", "expected"),
                         [c[1:] for c in POLICY_CASES], ids=[c[0] for c in POLICY_CASES])
def test_behavior_policies(behavior: dict, current: int, utilization: float,
                           expected: int) -> None:
    behavior = {"scaleDown": rules(0), **behavior}
    d = run(hpa(behavior=behavior, maxReplicas=1000), current, at(utilization, current))
    assert d.desired_replicas == expected


def test_a_rate_limited_scale_says_so() -> None:
    d = run(hpa(behavior=up(("Pods", 1, 60))), 2, at(500, 2))
    assert d.desired_replicas == 3
    assert conditions(d)["ScalingLimited"] == (True, "ScaleUpLimit")


def test_scale_events_in_the_period_count_against_the_policy() -> None:
    spec = hpa(behavior=up(("Pods", 4, 60)))
    recent = (ScaleEvent(timestamp=NOW - 20, change=4),)
    assert run(spec, 6, at(500, 6), events=recent).desired_replicas == 6
    assert run(spec, 6, at(500, 6), events=recent, now=NOW + 41).desired_replicas == 10


def test_scale_down_events_in_the_period_count_against_the_policy() -> None:
    spec = hpa(behavior=down(("Pods", 2, 60)))
    recent = (ScaleEvent(timestamp=NOW - 10, change=-2),)
    assert run(spec, 6, at(1, 6), events=recent).desired_replicas == 6
    assert run(spec, 6, at(1, 6), events=recent, now=NOW + 51).desired_replicas == 4


def test_old_scale_events_no_longer_limit_and_only_the_last_five_are_kept() -> None:
    spec = hpa(behavior=up(("Pods", 4, 60)))
    old = tuple(ScaleEvent(timestamp=NOW - 100 + i, change=4) for i in range(7))
    d = run(spec, 6, at(500, 6), events=old)
    assert d.desired_replicas == 10
    assert d.scale_events == (*old[3:], *d.scale_events[-1:])
    assert len(d.scale_events) == 5


# --- stabilization window ----------------------------------------------------------------

def test_a_scale_down_waits_for_the_default_300s_window() -> None:
    spec = hpa()
    assert spec.scale_down.stabilization_window_seconds == 300
    recs = (Recommendation(timestamp=NOW - 100, replicas=8),)
    d = run(spec, 8, at(25, 8), recs=recs)
    assert (d.code, d.desired_replicas) == (DecisionCode.NO_CHANGE, 8)
    assert conditions(d)["AbleToScale"] == (True, "ScaleDownStabilized")
    # The 8-proposal made at NOW-100 leaves the 300 s window at NOW+200, not before.
    assert run(spec, 8, at(25, 8), recs=d.recommendations, now=NOW + 199).desired_replicas == 8
    assert run(spec, 8, at(25, 8), recs=d.recommendations, now=NOW + 201).desired_replicas == 4


def test_the_window_applies_the_highest_recent_recommendation() -> None:
    spec = hpa(behavior={"scaleDown": rules(300)})
    recs = (Recommendation(timestamp=NOW - 250, replicas=8),
            Recommendation(timestamp=NOW - 100, replicas=6))
    assert run(spec, 8, at(25, 8), recs=recs).desired_replicas == 8
    assert run(spec, 8, at(25, 8), recs=recs, now=NOW + 60).desired_replicas == 6


def test_a_scale_up_window_applies_the_lowest_recent_recommendation() -> None:
    spec = hpa(behavior={"scaleUp": rules(60), "scaleDown": rules(0)})
    recs = (Recommendation(timestamp=NOW - 30, replicas=2),)
    d = run(spec, 2, at(150, 2), recs=recs)
    assert d.desired_replicas == 2
    assert conditions(d)["AbleToScale"] == (True, "ScaleUpStabilized")
    assert run(spec, 2, at(150, 2), recs=recs, now=NOW + 31).desired_replicas == 6


def test_a_configured_downscale_default_is_used_when_the_spec_sets_none() -> None:
    spec = parse_spec({"scaleTargetRef": {"name": "web"}, "maxReplicas": 5},
                      default_tolerance=0.2, downscale_stabilization=3.0)
    assert spec.scale_down.stabilization_window_seconds == 3.0
    assert spec.tolerance == 0.2
    assert spec.metrics == (cpu(80),)


def test_a_new_hpa_cannot_scale_down_before_the_window_has_passed() -> None:
    # Kubernetes seeds the history of an HPA it sees for the first time with the target's
    # current count: with the default 300 s window a new HPA holds 5 replicas for 300 s
    # however low the load.
    spec = hpa()
    first = run(spec, 5, at(10, 5))
    assert (first.code, first.desired_replicas) == (DecisionCode.NO_CHANGE, 5)
    assert conditions(first)["AbleToScale"] == (True, "ScaleDownStabilized")
    assert Recommendation(timestamp=NOW, replicas=5) in first.recommendations
    held = run(spec, 5, at(10, 5), recs=first.recommendations, now=NOW + 299)
    assert held.desired_replicas == 5
    later = run(spec, 5, at(10, 5), recs=held.recommendations, now=NOW + 301)
    assert later.desired_replicas == 1


def test_the_first_sight_seed_is_kept_when_the_first_sync_has_no_metrics() -> None:
    spec = hpa()
    first = run(spec, 4, [unready()] * 4)
    assert first.code is DecisionCode.NO_METRICS
    assert first.recommendations == (Recommendation(timestamp=NOW, replicas=4),)
    d = run(spec, 4, at(10, 4), recs=first.recommendations, now=NOW + 200)
    assert d.desired_replicas == 4  # the window counts from the first sight, not from metrics


def test_a_new_hpa_with_no_scale_down_window_scales_down_at_once() -> None:
    d = run(hpa(behavior=NO_WINDOWS), 5, at(10, 5))
    assert d.desired_replicas == 1


def test_a_new_hpa_still_scales_up_at_once() -> None:
    d = run(hpa(), 2, at(100, 2))
    assert d.desired_replicas == 4


def test_a_paused_hpa_is_not_seeded() -> None:
    assert run(hpa(paused=True), 5, at(10, 5)).recommendations == ()


def test_the_history_survives_a_round_trip_through_the_status() -> None:
    spec = hpa()
    first = run(spec, 8, at(100, 8), now=NOW - 100)  # proposal 16, capped by nothing
    assert first.desired_replicas == 16
    recs = load_recommendations(dump_recommendations(first.recommendations), now=NOW)
    events = load_scale_events(dump_scale_events(first.scale_events), now=NOW)
    assert tuple(recs) == first.recommendations
    d = run(spec, 16, at(10, 16), recs=tuple(recs), events=tuple(events))
    assert d.desired_replicas == 16  # a restart does not reset the window


def test_recommendation_compaction_never_changes_a_stabilized_result() -> None:
    rng = random.Random(7)
    for _ in range(200):
        up_w, down_w = rng.choice([0, 5, 30]), rng.choice([0, 10, 60])
        recs = sorted((Recommendation(timestamp=NOW - rng.uniform(0, 80),
                                      replicas=rng.randint(1, 9)) for _ in range(12)),
                      key=lambda r: r.timestamp)
        compact = compact_recommendations(recs, now=NOW, up_window=up_w, down_window=down_w)
        assert len(compact) <= len(recs)
        spec = hpa(behavior={"scaleUp": rules(up_w), "scaleDown": rules(down_w)})
        for later in (0, 3, 9, 20, 45, 70):
            desired, current = rng.randint(1, 9), rng.randint(1, 9)
            kwargs = dict(desired=desired, current=current, scale_up=spec.scale_up,
                          scale_down=spec.scale_down, now=NOW + later)
            assert stabilize(recs, **kwargs) == stabilize(compact, **kwargs)


def test_garbage_and_future_history_entries_are_tolerated() -> None:
    raw = [{"timestamp": "yesterday", "replicas": 3}, {"replicas": 2}, "x",
           {"timestamp": format_time(NOW + 3600), "replicas": 7},
           {"timestamp": format_time(NOW - 1), "replicas": -1}]
    assert load_recommendations(raw, now=NOW) == [Recommendation(timestamp=NOW, replicas=7)]
    assert parse_time(format_time(NOW + 0.25)) == pytest.approx(NOW + 0.25)


# --- paused and bad specs ----------------------------------------------------------------

def test_a_paused_hpa_freezes_the_target_and_its_history() -> None:
    recs = (Recommendation(timestamp=NOW - 1, replicas=2),)
    d = run(hpa(paused=True), 2, at(500, 2), recs=recs)
    assert (d.code, d.desired_replicas, d.rescale) == (DecisionCode.PAUSED, 2, False)
    assert d.recommendations == recs
    assert conditions(d)["ScalingActive"] == (False, "ScalingPaused")


@pytest.mark.parametrize("bad", [
    {"maxReplicas": 0},
    {"minReplicas": 5, "maxReplicas": 2},
    {"scaleTargetRef": {"kind": "Deployment", "name": "x"}},
    {"metrics": [{"type": "Resource", "resource": {"name": "gpu", "target": {
        "averageUtilization": 50}}}]},
    {"behavior": {"scaleUp": {"selectPolicy": "Sometimes"}}},
    {"behavior": {"scaleDown": {"policies": [{"type": "Pods", "value": 0,
                                              "periodSeconds": 15}]}}},
    {"tolerance": -1},
])
def test_an_unusable_spec_is_a_terminal_error(bad: dict) -> None:
    spec = {"scaleTargetRef": {"kind": "ECSMService", "name": "web"}, "maxReplicas": 5, **bad}
    with pytest.raises(TerminalError) as e:
        parse_spec(spec, default_tolerance=0.1, downscale_stabilization=300)
    assert e.value.reason == "InvalidSpec"
