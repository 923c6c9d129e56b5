"""Every field of ECSMService and ECSMHpa has an upper bound: the largest value is accepted,
anything beyond it is refused with the field's path; replicas, nodes, memory and disk
follow the configuration (``[api]``)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.api import configure_limits, prepare
from ecsm_actors.api.limits import DEFAULT, Limits
from ecsm_actors.config import load_config
from ecsm_actors.errors import ConfigError, Invalid
from tests.registry_samples import hpa, service

TI = 1 << 40


def env(n: int) -> list[dict[str, str]]:
    return [{"name": f"V{i}", "value": "x"} for i in range(n)]


def mounts(n: int) -> list[dict[str, str]]:
    return [{"name": f"m{i}", "hostPath": f"/h/{i}", "containerPath": f"/c/{i}"}
            for i in range(n)]


def names(n: int, prefix: str = "node-") -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def policies(n: int) -> list[dict[str, Any]]:
    return [{"type": "Pods", "value": 1, "periodSeconds": i + 1} for i in range(n)]


# (kind, path, largest accepted, first refused, field reported, message)
SERVICE_BOUNDS: list[tuple[str, Any, Any, str, str]] = [
    ("spec.deploymentStrategy.replicas", 1000, 1_000_000, "spec.deploymentStrategy.replicas",
     "must be less than or equal to 1000"),
    ("spec.deploymentStrategy.nodePool", names(1000), names(1001),
     "spec.deploymentStrategy.nodePool", "must have at most 1000 items, got 1001"),
    ("spec.template.resources.limits.memory", "1Ti", "1e30",
     "spec.template.resources.limits.memory", 'must be less than or equal to 1Ti, got "1e30"'),
    ("spec.template.resources.limits.memory", TI, "100000000Ei",
     "spec.template.resources.limits.memory", "must be less than or equal to 1Ti"),
    ("spec.template.resources.limits.disk", "64Ti", "65Ti",
     "spec.template.resources.limits.disk", "must be less than or equal to 64Ti"),
    ("spec.template.platformSpecific.sylixos.memory.kheapLimit", TI, TI + 1,
     "spec.template.platformSpecific.sylixos.memory.kheapLimit",
     f"must be less than or equal to {TI}"),
    ("spec.template.env", env(256), env(257), "spec.template.env", "at most 256 items"),
    ("spec.template.volumeMounts", mounts(64), mounts(65), "spec.template.volumeMounts",
     "at most 64 items"),
    ("spec.template.command", ["x"] * 256, ["x"] * 257, "spec.template.command",
     "at most 256 items"),
    ("spec.template.command", ["x" * 4096], ["x" * 4097], "spec.template.command[0]",
     "no more than 4096 characters"),
    ("spec.template.image", "a@" + "1" * 510, "a@" + "1" * 511, "spec.template.image",
     "no more than 512 characters, got 513"),
    ("spec.template.hostname", "h" * 253, "h" * 254, "spec.template.hostname",
     "no more than 253 characters"),
    ("spec.template.vsoa.healthCheck.timeoutSeconds", 3600, 3601,
     "spec.template.vsoa.healthCheck.timeoutSeconds", "less than or equal to 3600"),
    ("spec.template.vsoa.healthCheck.periodSeconds", 86400, 86401,
     "spec.template.vsoa.healthCheck.periodSeconds", "less than or equal to 86400"),
    ("spec.template.vsoa.healthCheck.failureThreshold", 1000, 1001,
     "spec.template.vsoa.healthCheck.failureThreshold", "less than or equal to 1000"),
    ("spec.template.vsoa.password", "p" * 256, "p" * 257, "spec.template.vsoa.password",
     "no more than 256 characters"),
    ("spec.dependsOn", names(64, "db-"), names(65, "db-"), "spec.dependsOn",
     "at most 64 items"),
    ("spec.priority", 10**9, 10**9 + 1, "spec.priority", "less than or equal to 1000000000"),
    ("spec.priority", -(10**9), -(10**9) - 1, "spec.priority",
     "greater than or equal to -1000000000"),
    ("spec.rollout.revisionHistoryLimit", 100, 101, "spec.rollout.revisionHistoryLimit",
     "less than or equal to 100"),
    ("spec.rollout.maxSurge", 1000, 1001, "spec.rollout.maxSurge",
     "less than or equal to 1000"),
    ("spec.rollout.maxSurge", "100%", "101%", "spec.rollout.maxSurge",
     "must not be greater than 100%"),
    ("metadata.labels", {f"k{i}": "v" for i in range(256)},
     {f"k{i}": "v" for i in range(257)}, "metadata.labels", "at most 256 entries"),
    ("metadata.annotations", {f"k{i}": "v" for i in range(512)},
     {f"k{i}": "v" for i in range(513)}, "metadata.annotations", "at most 512 entries"),
    ("metadata.finalizers", names(32, "ecsm.sh/f"), names(33, "ecsm.sh/f"),
     "metadata.finalizers", "at most 32 items"),
]

HPA_BOUNDS: list[tuple[str, Any, Any, str, str]] = [
    ("spec.maxReplicas", 1000, 1001, "spec.maxReplicas", "less than or equal to 1000"),
    ("spec.behavior.scaleUp.policies", policies(10), policies(11),
     "spec.behavior.scaleUp.policies", "at most 10 items"),
    ("spec.behavior.scaleDown.policies", [{"type": "Percent", "value": 10_000,
                                           "periodSeconds": 15}],
     [{"type": "Percent", "value": 10_001, "periodSeconds": 15}],
     "spec.behavior.scaleDown.policies[0].value", "less than or equal to 10000"),
    ("spec.behavior.scaleUp.stabilizationWindowSeconds", 3600, 3601,
     "spec.behavior.scaleUp.stabilizationWindowSeconds", "less than or equal to 3600"),
    ("spec.metrics", [{"resource": {"name": "cpu", "target": {"averageUtilization": 10_000}}}],
     [{"resource": {"name": "cpu", "target": {"averageUtilization": 10_001}}}],
     "spec.metrics[0].resource.target.averageUtilization", "less than or equal to 10000"),
]


def patched(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return out


def cases(base: dict[str, Any], bounds: list[tuple[str, Any, Any, str, str]]) -> list[Any]:
    return [pytest.param(base, *b, id=f"{base['kind']}:{b[0]}={str(b[2])[:20]}")
            for b in bounds]


ALL = cases(service("app"), SERVICE_BOUNDS) + cases(hpa("app"), HPA_BOUNDS)


@pytest.mark.parametrize(("base", "path", "largest", "beyond", "field", "message"), ALL)
def test_the_largest_value_is_accepted_and_the_next_refused_with_the_field_path(
        base: dict[str, Any], path: str, largest: Any, beyond: Any, field: str,
        message: str) -> None:
    if path == "spec.maxReplicas":
        base = patched(base, "spec.minReplicas", 1)
    prepare(patched(base, path, largest))
    with pytest.raises(Invalid) as info:
        prepare(patched(base, path, beyond))
    found = {c.field: c.message for c in info.value.causes}
    assert field in found, found
    assert message in found[field]


def test_the_message_names_the_field_and_its_bound() -> None:
    with pytest.raises(Invalid) as info:
        prepare(service("app", replicas=1_000_000))
    assert ("spec.deploymentStrategy.replicas: must be less than or equal to 1000, "
            "got 1000000") in str(info.value)


def test_an_hpa_cannot_ask_for_more_replicas_than_a_service_may_have() -> None:
    obj = patched(patched(hpa("app"), "spec.minReplicas", 1001), "spec.maxReplicas", 1001)
    with pytest.raises(Invalid) as info:
        prepare(obj)
    assert {c.field for c in info.value.causes} == {"spec.minReplicas", "spec.maxReplicas"}


@pytest.fixture
def limits() -> Iterator[Any]:
    yield configure_limits
    configure_limits(DEFAULT)


def test_a_device_that_needs_more_raises_the_configured_limits(limits: Any) -> None:
    limits(Limits(max_replicas=5000, max_nodes=2000, max_memory=4 * TI, max_disk=128 * TI))
    big = patched(service("app", replicas=5000), "spec.template.resources.limits",
                  {"memory": "4Ti", "disk": "128Ti"})
    big = patched(big, "spec.deploymentStrategy.nodePool", names(2000))
    assert prepare(big)["spec"]["deploymentStrategy"]["replicas"] == 5000
    assert prepare(patched(hpa("app"), "spec.maxReplicas", 5000))
    with pytest.raises(Invalid, match="replicas: must be less than or equal to 5000"):
        prepare(service("app", replicas=5001))
    with pytest.raises(Invalid, match="memory: must be less than or equal to 4Ti"):
        prepare(patched(big, "spec.template.resources.limits.memory", "5Ti"))


def test_lowered_limits_apply_to_the_fast_path_too(limits: Any) -> None:
    prepare(service("app", replicas=50))  # compiled with the default bound
    limits(Limits(max_replicas=10))
    with pytest.raises(Invalid, match="must be less than or equal to 10, got 50"):
        prepare(service("app", replicas=50))


def test_the_limits_are_read_from_the_api_section_of_the_configuration(
        limits: Any, tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text('[api]\nmax_replicas = 2000\nmax_memory = "2Ti"\n')
    applied = limits(load_config(conf, environ={}).api)
    assert (applied.max_replicas, applied.max_memory) == (2000, 2 * TI)
    prepare(service("app", replicas=2000))
    env = load_config(None, environ={"ECSM_ACTORS_API_MAX_NODES": "3"}).api
    assert limits(env).max_nodes == 3


def test_a_limit_that_is_not_positive_is_refused_naming_its_key(limits: Any) -> None:
    with pytest.raises(ConfigError, match="api.max_replicas"):
        limits(Limits(max_replicas=0))
