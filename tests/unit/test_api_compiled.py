"""The compiled fast path of validation answers exactly as the generic walker does.

For valid objects it must return the very same normalised dict (same keys, same order,
same types); for anything else it must decline (Fallback), so that errors always come
from the generic walker. Checked on every field of both kinds and on thousands of seeded
random mutations of them.
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecsm_actors.api import prepare, prepare_status
from ecsm_actors.api.compiled import Fallback, compiled
from ecsm_actors.api.enums import StrategyType
from ecsm_actors.api.schema import Walk
from ecsm_actors.api.validation import _OBJECTS, _STATUSES, _UNKNOWN_KIND, _name_of
from ecsm_actors.errors import Invalid
from tests.registry_samples import hpa, service

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "conf" / "examples").rglob("*.yaml"))

SERVICE_STATUS = {
    "replicas": 2, "readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1,
    "observedGeneration": 3, "underlyingServiceIDs": ["s-1", "s-2"], "currentRevision": "abc",
    "conditions": [{"type": "Available", "status": "True", "reason": "Ready",
                    "message": "ok", "lastTransitionTime": "2026-11-26T08:51:49Z"}],
}
HPA_STATUS = {
    "currentReplicas": 2, "desiredReplicas": 3, "observedGeneration": 1,
    "currentMetrics": [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 75, "averageValue": 0.5}}}],
    "lastScaleTime": "2026-11-26T08:51:49Z",
    "recommendations": [{"timestamp": "2026-11-26T08:51:49Z", "replicas": 3}],
    "scaleEvents": [{"timestamp": "2026-11-26T08:51:49Z", "replicaChange": 1,
                     "reason": "cpu above target"}],
}

class ReadOnlyMap(Mapping[str, Any]):
    """A mapping that is not a dict (the fast path must decline it)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


PALETTE: list[Any] = [
    None, 0, -1, 1, 3, 300, 2**31, 2**63 - 1, True, False, 0.5, 1.0, math.nan, math.inf,
    "", "x", "Web", "web", "25%", "101%", "512Mi", "0.5Mi", "1Gi", "app@1.0", "a=b",
    "/abs", "Dynamic", "Static", "cpu", "2026-11-26T08:51:49Z", [], ["a"], ["a", "a"],
    [1, 2], [{}], {}, {"x": 1}, {"a": "b"}, ("a",), StrategyType.DYNAMIC,
    ReadOnlyMap({"a": "b"}),
]


def corpus() -> list[dict[str, Any]]:
    docs = [d for path in EXAMPLES for d in yaml.safe_load_all(path.read_text()) if d]
    return docs + [service("web"), service("db", namespace="prod", labels={"a": "b"}),
                   hpa("web")]


def same(a: Any, b: Any) -> bool:
    """Equal with the same types and the same key order, all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


def check(schema: Any, value: Any, context: dict[str, Any]) -> bool:
    """Fast and generic walks agree; True when the fast path answered."""
    generic = Walk(context=context)
    expected = schema.walk(value, "", generic)
    try:
        got = compiled(schema)(value, Walk(context=context))
    except Fallback:
        return False
    assert not generic.causes, f"fast path accepted what the walker refuses: {generic.causes}"
    assert same(got, expected)
    return True


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


def mutated(doc: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    path = rng.choice(paths(out)[1:])
    *parents, last = path
    node: Any = out
    for p in parents:
        node = node[p]
    how = rng.random()
    if how < 0.15 and isinstance(node, dict):
        del node[last]
    elif how < 0.25 and isinstance(node[last], dict):
        node[last][rng.choice(["unknown", "Name", "type", "status"])] = rng.choice(PALETTE)
    elif how < 0.3 and isinstance(node[last], list) and node[last]:
        node[last].append(copy.deepcopy(node[last][0]))
    else:
        node[last] = copy.deepcopy(rng.choice(PALETTE))
    return out


@pytest.mark.parametrize("doc", corpus(), ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_a_valid_object_takes_the_fast_path_and_gets_the_same_result(doc: dict) -> None:
    schema = _OBJECTS[doc["kind"]]
    assert check(schema, doc, {"name": _name_of(doc)})
    assert check(schema, prepare(doc), {"name": _name_of(doc)})


@pytest.mark.parametrize("kind, status", [("ECSMService", SERVICE_STATUS),
                                          ("ECSMHpa", HPA_STATUS), ("ECSMService", {})])
def test_a_valid_status_takes_the_fast_path_and_gets_the_same_result(kind: str,
                                                                      status: dict) -> None:
    assert check(_STATUSES[kind], status, {})


def test_thousands_of_mutations_get_the_generic_walkers_answer() -> None:
    rng = random.Random(20261126)
    docs = corpus() + [{"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
                        "metadata": {"name": "s"}, "spec": {}, "status": SERVICE_STATUS}]
    fast = 0
    for _ in range(3000):
        doc = mutated(rng.choice(docs), rng)
        kind = doc.get("kind")
        schema = _OBJECTS.get(kind, _UNKNOWN_KIND) if isinstance(kind, str) else _UNKNOWN_KIND
        fast += check(schema, doc, {"name": _name_of(doc)})
    statuses = [("ECSMService", SERVICE_STATUS), ("ECSMHpa", HPA_STATUS)]
    for _ in range(1500):
        kind, status = rng.choice(statuses)
        fast += check(_STATUSES[kind], mutated(status, rng), {})
    assert 300 < fast < 4000  # both paths were exercised


def test_an_invalid_object_reports_the_generic_walkers_causes() -> None:
    doc = service("web")
    doc["spec"]["template"]["env"] = [{"name": "A"}, {"name": "A", "value": 3}]
    with pytest.raises(Invalid) as info:
        prepare(doc)
    assert {c.field: c.message for c in info.value.causes} == {
        "spec.template.env[1].value": "expected string, got integer 3",
        "spec.template.env[1].name": 'duplicate value string "A"'}
    with pytest.raises(Invalid) as status_info:
        prepare_status("ECSMService", {"replicas": -1})
    assert [c.field for c in status_info.value.causes] == ["status.replicas"]
