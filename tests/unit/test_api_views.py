"""Typed views, template revisions, conditions, timestamps and the shipped examples."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecsm_actors.api import (
    Condition,
    ConditionStatus,
    ECSMHpa,
    ECSMService,
    ImageAction,
    StrategyType,
    format_timestamp,
    parse_timestamp,
    prepare,
    set_condition,
    template_hash,
)
from ecsm_actors.errors import Invalid

EXAMPLES = Path(__file__).resolve().parents[2] / "conf" / "examples"
REFERENCE = EXAMPLES / "reference" / "ecsmservice-all-fields.yaml"


def documents() -> list[dict[str, Any]]:
    return [d for f in sorted(EXAMPLES.rglob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]


def reference(kind: str) -> dict[str, Any]:
    return next(d for d in yaml.safe_load_all(REFERENCE.read_text()) if d["kind"] == kind)


def test_every_shipped_example_is_valid_and_they_cover_the_demo() -> None:
    prepared = [prepare(d) for d in documents()]
    names = {(p["kind"], p["metadata"]["name"]) for p in prepared}
    assert {("ECSMService", "db"), ("ECSMService", "web"), ("ECSMService", "app"),
            ("ECSMHpa", "app")} <= names


def test_the_examples_use_only_the_simulators_seeded_nodes_and_images() -> None:
    for doc in documents():
        if doc["kind"] != "ECSMService":
            continue
        svc = ECSMService.from_dict(doc)
        assert set(svc.spec.deployment_strategy.candidate_nodes) <= {"node-1", "node-2", "node-3"}
        assert svc.spec.template.image in {"app@1.0#sylixos", "web@1.0#sylixos", "db@1.0#sylixos"}


@pytest.mark.parametrize("kind", ["ECSMService", "ECSMHpa"])
def test_a_view_round_trips_to_the_prepared_dict(kind: str) -> None:
    cls = ECSMService if kind == "ECSMService" else ECSMHpa
    for doc in [*documents(), reference(kind)]:
        if doc["kind"] == kind:
            prepared = prepare(doc)
            assert cls.from_dict(prepared).to_dict() == prepared


def test_a_view_with_status_round_trips_and_dumps_as_plain_yaml() -> None:
    doc = reference("ECSMService")
    doc["metadata"].update(uid="u-1", resourceVersion=7, generation=2,
                           creationTimestamp="2026-11-26T08:51:49Z")
    doc["status"] = {"replicas": 2, "readyReplicas": 1, "updatedReplicas": 2,
                     "availableReplicas": 1, "observedGeneration": 2,
                     "underlyingServiceIDs": ["svc-1"], "currentRevision": "0123456789",
                     "conditions": [{"type": "Available", "status": "False", "reason": "Rolling",
                                     "message": "1 of 2 ready",
                                     "lastTransitionTime": "2026-11-26T08:51:49Z"}]}
    svc = ECSMService.from_dict(doc)
    assert svc.to_dict() == prepare(doc)
    assert svc.status is not None and svc.status.underlying_service_ids == ("svc-1",)
    assert svc.status.condition("Available") == Condition(
        type="Available", status=ConditionStatus.FALSE, reason="Rolling",
        message="1 of 2 ready", last_transition_time="2026-11-26T08:51:49Z")
    assert yaml.safe_load(yaml.safe_dump(svc.to_dict())) == svc.to_dict()


def test_the_service_view_reads_conveniently() -> None:
    svc = ECSMService.from_dict(reference("ECSMService"))
    t = svc.spec.template
    assert (svc.name, svc.namespace, svc.key) == ("reference", "default", "default/reference")
    assert svc.spec.deployment_strategy.type is StrategyType.DYNAMIC
    assert svc.desired_replicas == 2
    assert t.image_ref.name == "app" and t.image_ref.tag == "1.0" and t.image_ref.os == "sylixos"
    assert (t.limits.memory_mib, t.limits.disk_mib) == (512, 1024)
    assert t.env[0].name == "LOG_LEVEL" and t.volume_mounts[0].container_path == "/data"
    assert t.vsoa is not None and t.vsoa.health_check is not None
    assert t.vsoa.health_check.initial_delay_seconds == 5
    assert t.platform_specific.action is ImageAction.RUN
    sylixos = t.platform_specific.sylixos
    assert sylixos is not None and sylixos.cpu is not None and sylixos.cpu.highest_prio == 200
    assert svc.revision == template_hash(prepare(reference("ECSMService"))["spec"]["template"])


def test_a_static_service_wants_one_instance_per_node() -> None:
    doc = reference("ECSMService")
    doc["spec"]["deploymentStrategy"] = {"type": "Static", "nodes": ["node-1", "node-3"]}
    svc = ECSMService.from_dict(doc)
    assert svc.desired_replicas == 2
    assert svc.spec.deployment_strategy.replicas is None


def test_rollout_bounds_follow_kubernetes_rounding() -> None:
    doc = reference("ECSMService")
    doc["spec"]["rollout"] = {"maxSurge": "25%", "maxUnavailable": "25%"}
    rollout = ECSMService.from_dict(doc).spec.rollout
    assert rollout.bounds(10) == (3, 2)  # surge rounds up, unavailable rounds down
    assert rollout.bounds(1) == (1, 0)
    doc["spec"]["rollout"] = {"maxSurge": "0%", "maxUnavailable": "10%"}
    assert ECSMService.from_dict(doc).spec.rollout.bounds(3) == (0, 1)  # never both 0


def test_the_hpa_view_reads_conveniently() -> None:
    hpa = ECSMHpa.from_dict(reference("ECSMHpa"))
    assert hpa.target_key == "default/reference"
    assert hpa.spec.target_utilization("cpu") == 70
    assert hpa.spec.target_utilization("memory") == 80
    assert hpa.spec.behavior.scale_down.stabilization_window_seconds == 300
    assert hpa.spec.behavior.scale_up.policies[0].period_seconds == 15
    assert hpa.spec.tolerance == 0.1


def test_from_dict_validates_and_checks_the_kind() -> None:
    with pytest.raises(Invalid):
        ECSMService.from_dict(reference("ECSMHpa"))
    bad = reference("ECSMService")
    bad["spec"]["template"]["image"] = "app"
    with pytest.raises(Invalid) as info:
        ECSMService.from_dict(bad)
    assert [c.field for c in info.value.causes] == ["spec.template.image"]


def test_a_view_built_in_code_equals_the_defaulted_wire_form() -> None:
    svc = ECSMService.from_dict(reference("ECSMService"))
    scaled = dataclasses.replace(
        svc, spec=dataclasses.replace(svc.spec, deployment_strategy=dataclasses.replace(
            svc.spec.deployment_strategy, replicas=4)))
    assert prepare(scaled.to_dict()) == scaled.to_dict()
    assert scaled.to_dict()["spec"]["deploymentStrategy"]["replicas"] == 4


def test_the_same_template_always_has_the_same_hash_whatever_the_key_order() -> None:
    template = prepare(reference("ECSMService"))["spec"]["template"]
    reordered = {k: template[k] for k in reversed(list(template))}
    assert template_hash(template) == template_hash(reordered)
    assert len(template_hash(template)) == 10
    assert int(template_hash(template), 16) >= 0


def test_the_hash_is_taken_over_the_defaulted_template() -> None:
    raw = {"image": "app@1.0#sylixos"}
    defaulted = prepare({"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
                         "metadata": {"name": "app"},
                         "spec": {"deploymentStrategy": {"type": "Static", "nodes": ["n"]},
                                  "template": raw}})["spec"]["template"]
    assert template_hash(raw, name="app") == template_hash(defaulted)
    assert template_hash({**raw, "env": []}, name="app") == template_hash(defaulted)


@pytest.mark.parametrize("change", [
    {"image": "app@1.1#sylixos"},
    {"env": [{"name": "A", "value": "1"}]},
    {"hostname": "other"},
    {"resources": {"limits": {"memory": "256Mi"}}},
    {"platformSpecific": {"action": "Load"}},
])
def test_a_different_template_has_a_different_hash(change: dict[str, Any]) -> None:
    base = {"image": "app@1.0#sylixos", "hostname": "app"}
    assert template_hash({**base, **change}) != template_hash(base)


def test_hashing_an_invalid_template_is_refused() -> None:
    with pytest.raises(Invalid):
        template_hash({"image": "bad"})


def test_set_condition_moves_the_transition_time_only_when_the_status_changes() -> None:
    ready = Condition(type="Available", status=ConditionStatus.TRUE, reason="AllReady")
    first = set_condition((), ready, now="2026-11-26T08:00:00Z")
    assert first[0].last_transition_time == "2026-11-26T08:00:00Z"
    same = set_condition(first, dataclasses.replace(ready, message="3/3"),
                         now="2026-11-26T09:00:00Z")
    assert same[0].last_transition_time == "2026-11-26T08:00:00Z" and same[0].message == "3/3"
    other = Condition(type="Progressing", status=ConditionStatus.FALSE)
    flipped = set_condition(same + (other,), dataclasses.replace(
        ready, status=ConditionStatus.FALSE), now="2026-11-26T10:00:00Z")
    assert [c.type for c in flipped] == ["Available", "Progressing"]
    assert flipped[0].last_transition_time == "2026-11-26T10:00:00Z"
    assert not flipped[0].is_true


def test_timestamps_are_rfc3339_utc_whole_seconds() -> None:
    assert format_timestamp(1795683109.9) == "2026-11-26T08:51:49Z"
    assert parse_timestamp("2026-11-26T08:51:49Z") == 1795683109.0
    assert parse_timestamp("2026-11-26T09:51:49.5+01:00") == 1795683109.5
    with pytest.raises(Invalid):
        parse_timestamp("2026-11-26 08:51:49")


def test_reading_a_view_leaves_the_input_untouched() -> None:
    doc = reference("ECSMHpa")
    before = copy.deepcopy(doc)
    ECSMHpa.from_dict(doc)
    assert doc == before
