"""Per-direction tolerance, from Kubernetes' "configurable tolerance" (autoscaling/v2
``HPAScalingRules.tolerance``): a ratio r is inside when ``1 - scaleDown.tolerance <= r <=
1 + scaleUp.tolerance``; a direction without its own tolerance takes ``spec.tolerance``,
then the controller's ``hpa.tolerance``. No sockets, no processes, no sleep."""

from __future__ import annotations

from typing import Any

import pytest

from ecsm_actors import api
from ecsm_actors.controllers.hpa.algorithm import History, decide
from ecsm_actors.controllers.hpa.samples import InstanceSample
from ecsm_actors.controllers.hpa.spec import HpaSpec, Tolerances, parse_spec
from ecsm_actors.errors import Invalid, TerminalError

pytestmark = pytest.mark.timeout(10)

NOW = 1_700_000_000.0


def spec(**fields: Any) -> HpaSpec:
    body = {"scaleTargetRef": {"name": "web"}, "maxReplicas": 100,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 100}}}],
            **fields}
    return parse_spec(body, default_tolerance=0.1, downscale_stabilization=0.0)


def desired(hpa: HpaSpec, utilization: float, current: int = 10) -> int:
    samples = [InstanceSample(name=f"c{i}", ready=True, cpu_percent=utilization,
                              started=NOW - 3600, timestamp=NOW) for i in range(current)]
    return decide(hpa, current=current, samples=samples, history=History(), now=NOW,
                  metric_max_age=60).desired_replicas


def behavior(up: float | None = None, down: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"scaleUp": {}, "scaleDown": {"stabilizationWindowSeconds": 0}}
    if up is not None:
        out["scaleUp"]["tolerance"] = up
    if down is not None:
        out["scaleDown"]["tolerance"] = down
    return out


def test_without_any_tolerance_set_both_directions_take_the_controller_default() -> None:
    assert spec().tolerances == Tolerances(scale_up=0.1, scale_down=0.1)


def test_spec_tolerance_is_the_fallback_of_both_directions() -> None:
    assert spec(tolerance=0.3).tolerances == Tolerances(scale_up=0.3, scale_down=0.3)


def test_a_direction_with_its_own_tolerance_uses_it_and_the_other_falls_back() -> None:
    hpa = spec(tolerance=0.3, behavior=behavior(up=0.05))
    assert hpa.tolerances == Tolerances(scale_up=0.05, scale_down=0.3)


@pytest.mark.parametrize(("utilization", "expected"), [
    (104, 10),   # +4 %: inside the 5 % scale-up tolerance
    (106, 11),   # +6 %: outside it, scales up
    (60, 10),    # -40 %: inside the 50 % scale-down tolerance
    (45, 5),     # -55 %: outside it, scales down
])
def test_each_direction_is_judged_by_its_own_tolerance(utilization: float,
                                                       expected: int) -> None:
    # Kubernetes' example of the feature: react fast to load, slowly to its absence.
    hpa = spec(behavior=behavior(up=0.05, down=0.5))
    assert desired(hpa, utilization) == expected


def test_a_ratio_exactly_on_a_directional_tolerance_is_inside() -> None:
    assert desired(spec(behavior=behavior(up=0.2, down=0.0)), 120) == 10
    assert desired(spec(behavior=behavior(up=0.0, down=0.2)), 80) == 10


def test_a_zero_scale_down_tolerance_scales_down_on_any_deviation() -> None:
    assert desired(spec(behavior=behavior(down=0.0)), 95) == 10  # ceil(9.5) = 10
    assert desired(spec(behavior=behavior(down=0.0)), 89) == 9


def test_the_registry_accepts_and_keeps_directional_tolerances() -> None:
    obj = {"apiVersion": "ecsm.sh/v1", "kind": "ECSMHpa", "metadata": {"name": "web"},
           "spec": {"scaleTargetRef": {"name": "web"}, "maxReplicas": 5,
                    "behavior": {"scaleUp": {"tolerance": 0.05},
                                 "scaleDown": {"tolerance": 0.5}}}}
    prepared = api.prepare(obj)
    assert prepared["spec"]["behavior"]["scaleUp"]["tolerance"] == 0.05
    assert prepared["spec"]["behavior"]["scaleDown"]["tolerance"] == 0.5
    assert "tolerance" not in api.prepare({**obj, "spec": {
        "scaleTargetRef": {"name": "web"}, "maxReplicas": 5}})["spec"]["behavior"]["scaleUp"]
    view = api.ECSMHpa.from_dict(obj)
    assert view.spec.behavior.scale_up.tolerance == 0.05


@pytest.mark.parametrize("bad", [-0.1, 1.5, "5%"])
def test_the_registry_refuses_a_bad_directional_tolerance_with_its_path(bad: Any) -> None:
    obj = {"apiVersion": "ecsm.sh/v1", "kind": "ECSMHpa", "metadata": {"name": "web"},
           "spec": {"scaleTargetRef": {"name": "web"}, "maxReplicas": 5,
                    "behavior": {"scaleDown": {"tolerance": bad}}}}
    with pytest.raises(Invalid) as e:
        api.prepare(obj)
    assert "spec.behavior.scaleDown.tolerance" in str(e.value)


def test_the_controller_refuses_a_negative_directional_tolerance() -> None:
    with pytest.raises(TerminalError) as e:
        spec(behavior=behavior(up=-1))
    assert "spec.behavior.scaleUp.tolerance" in str(e.value)
