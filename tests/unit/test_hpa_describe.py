"""``ecsm-cli describe hpa`` lets an operator follow the arithmetic of every decision: each
scale decision and the current ScalingActive message name each metric's figure and the
instances behind it (counted, missing, unready); per-direction tolerances are shown with
their fallback. A decision is built by the algorithm, written as the controller writes
the status, and rendered as the CLI renders it. No sockets, no processes, no sleep."""

from __future__ import annotations

from typing import Any

import pytest

from ecsm_actors.cli.desired_views import describe_hpa
from ecsm_actors.controllers.hpa.algorithm import decide
from ecsm_actors.controllers.hpa.samples import InstanceSample
from ecsm_actors.controllers.hpa.spec import parse_spec
from ecsm_actors.controllers.hpa.status import build_status, history_of

pytestmark = pytest.mark.timeout(10)

NOW = 1_700_000_000.0


def spec_body(**fields: Any) -> dict[str, Any]:
    return {"scaleTargetRef": {"kind": "ECSMService", "name": "web"}, "minReplicas": 1,
            "maxReplicas": 10, "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
            **fields}


def instance(cpu: float | None, *, ready: bool = True, up: float = 3600) -> InstanceSample:
    return InstanceSample(name="c", ready=ready, cpu_percent=cpu, timestamp=NOW,
                          started=NOW - up)


def sync(obj: dict[str, Any], current: int, samples: list[InstanceSample], now: float
         ) -> dict[str, Any]:
    spec = parse_spec(obj["spec"], default_tolerance=0.1, downscale_stabilization=0.0)
    decision = decide(spec, current=current, samples=samples,
                      history=history_of(obj.get("status"), now=now), now=now,
                      metric_max_age=1e9)
    return {**obj, "status": build_status(obj.get("status"), decision, generation=1, now=now)}


def hpa_object(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "ecsm.sh/v1", "kind": "ECSMHpa",
            "metadata": {"name": "web", "namespace": "default",
                         "creationTimestamp": "2023-11-14T22:00:00Z"},
            "spec": spec_body(**fields)}


def test_every_scale_decision_shows_the_utilization_and_its_inputs() -> None:
    obj = hpa_object()
    # 2 instances at 150 %, 1 without a figure, 1 still starting → 2 counted.
    obj = sync(obj, 4, [instance(150), instance(150), instance(None),
                        instance(900, up=5)], NOW)
    # Later: 6 instances at 10 %, all counted → a scale-down.
    obj = sync(obj, 6, [instance(10)] * 6, NOW + 60)
    text = describe_hpa(obj, now=NOW + 61)
    decisions = text.split("Last scale decisions:")[1].split("Conditions:")[0]
    assert "4 -> 6" in decisions
    assert "cpu: 150%/50% (2 counted, 1 missing, 1 unready)" in decisions
    assert "6 -> 2" in decisions  # ceil(0.2 × 6)
    assert "cpu: 10%/50% (6 counted, 0 missing, 0 unready)" in decisions


def test_the_current_decision_shows_its_inputs_in_the_scaling_active_message() -> None:
    obj = sync(hpa_object(), 3, [instance(52), instance(51), instance(None, ready=False)],
               NOW)
    text = describe_hpa(obj, now=NOW)
    conditions = text.split("Conditions:")[1]
    assert "ValidMetricFound" in conditions
    assert "cpu: 51%/50% (2 counted, 0 missing, 1 unready)" in conditions


def test_tolerances_are_shown_per_direction_with_their_fallback() -> None:
    assert "Tolerance:            <controller default>" in describe_hpa(hpa_object())
    assert "Tolerance:            0.2" in describe_hpa(hpa_object(tolerance=0.2))
    text = describe_hpa(hpa_object(tolerance=0.2, behavior={"scaleUp": {"tolerance": 0.05}}))
    assert "Tolerance:            scale up 0.05, scale down 0.2" in text
