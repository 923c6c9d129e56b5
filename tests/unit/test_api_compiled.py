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

from ecsm_actors.api import prepare, prepare_spec, prepare_status, service_schema
from ecsm_actors.api.compiled import Fallback, _check_fails, _Source, compiled
from ecsm_actors.api.enums import StrategyType
from ecsm_actors.api.image import image_check
from ecsm_actors.api.meta import SERVER_OWNED
from ecsm_actors.api.names import (
    absolute_path,
    dns_label,
    label_value,
    qualified_name,
    timestamp_check,
)
from ecsm_actors.api.schema import Walk
from ecsm_actors.api.validation import _OBJECTS, _SPEC_WRITES, _STATUSES, _UNKNOWN_KIND, _name_of
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


# -- the checks written out inline ------------------------------------------------------

INLINE_CHECKS = [dns_label, qualified_name, label_value, absolute_path, image_check,
                 timestamp_check, service_schema._env_name]
STRINGS = ["", "a", "A", "-a", "a-", "a-b", "a.b", "a_b", "a\n", "\n", "a b", "é", "x" * 63,
           "x" * 64, "a" * 62 + "-", "a/b", "/b", "a/", "/", "//", "ecsm.sh/x", "ecsm.sh/",
           "Ecsm.sh/x", "e" * 254 + "/x", "a=b", "=", "app@1.0", "app@1.0#sylixos",
           "app@1.0#", "@1.0", "app@", "a/b:c@1.0+x#os", "app@1.0#sylixos\n", "/abs", "rel",
           "2026-11-26T08:51:49Z", "2026-11-26t08:51:49.5+01:00", "2026-13-26T08:51:49Z",
           "2026-11-26T08:51:49Z\n", "2026-11-26 08:51:49Z"]


def inline_form(check: Any) -> Any:
    """The check's inline expression as a function of ``v``."""
    src = _Source()
    src.add(0, "def walk(v, w):", f"    return {_check_fails(check, 'v', src)}")
    return src.build()


@pytest.mark.parametrize("check", INLINE_CHECKS, ids=lambda c: c.__name__)
def test_a_check_written_out_inline_refuses_exactly_what_the_check_refuses(check: Any) -> None:
    assert getattr(check, "inline", None) or getattr(check, "remembered", False)
    inline = inline_form(check)
    rng = random.Random(20261205)
    alphabet = "aZ09-._/=@#:+ \nTz"
    drawn = ["".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))
             for _ in range(3000)]
    for value in (STRINGS + drawn) * 2:  # twice: a remembered check answers from memory
        assert bool(inline(value, None)) == (check(value) is not None), repr(value)


# -- a spec write: status and server-owned metadata left out -----------------------------


def stripped_then_prepared(doc: Any) -> dict[str, Any]:
    """What a spec write keeps, the long way: the object copied without its status and
    server-owned metadata, then prepared."""
    body = dict(doc)
    body.pop("status", None)
    meta = body.get("metadata")
    if isinstance(meta, dict):
        body["metadata"] = {k: v for k, v in meta.items() if k not in SERVER_OWNED}
    out = prepare(body)
    out.pop("status", None)
    return out


def answer(prepare_of: Any, doc: Any) -> tuple[Any, ...]:
    try:
        return ("ok", prepare_of(doc))
    except Invalid as e:
        return ("invalid", str(e), [(c.field, c.message) for c in e.causes])


def as_written(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` as a client writes back what it read: server metadata and status with it."""
    out = copy.deepcopy(doc)
    out["metadata"] = {**out["metadata"], "uid": "u-1", "resourceVersion": 7, "generation": 2,
                       "creationTimestamp": "2026-11-26T08:51:49Z"}
    out["status"] = SERVICE_STATUS if doc["kind"] == "ECSMService" else HPA_STATUS
    return out


def rich_service() -> dict[str, Any]:
    """A service with labels, a command, env, limits and a rollout (bench_registry's)."""
    doc = service("b-1", labels={"app": "bench", "tier": "web"})
    doc["spec"]["template"].update(
        command=["/apps/app/app", "--port", "8080"],
        env=[{"name": f"VAR_{i}", "value": f"value-{i}"} for i in range(8)],
        resources={"limits": {"memory": "256Mi", "disk": "1Gi"}})
    doc["spec"]["rollout"] = {"maxSurge": 1, "maxUnavailable": 0}
    return doc


def spec_corpus() -> list[dict[str, Any]]:
    docs = corpus() + [rich_service()]
    return docs + [as_written(d) for d in docs] + [as_written(prepare(d)) for d in docs]


@pytest.mark.parametrize("doc", spec_corpus(),
                         ids=lambda d: f"{d['kind']}-{d['metadata']['name']}-{len(d)}")
def test_a_valid_spec_write_takes_the_fast_path_and_gets_what_the_long_way_gets(
        doc: dict[str, Any]) -> None:
    fast = compiled(_SPEC_WRITES[doc["kind"]])(doc, Walk(context={"name": _name_of(doc)}))
    assert same(fast, stripped_then_prepared(doc))
    assert same(prepare_spec(doc), fast)


def test_thousands_of_mutated_spec_writes_get_the_long_ways_answer() -> None:
    rng = random.Random(20261205)
    docs = spec_corpus()
    fast = 0
    for _ in range(3000):
        doc = mutated(rng.choice(docs), rng)
        if rng.random() < 0.1:  # metadata's server fields with values of any type
            meta = doc.get("metadata")
            if isinstance(meta, dict):
                meta[rng.choice(SERVER_OWNED)] = copy.deepcopy(rng.choice(PALETTE))
        expected, got = answer(stripped_then_prepared, doc), answer(prepare_spec, doc)
        assert got[0] == expected[0], doc
        if expected[0] == "ok":
            assert same(got[1], expected[1]), doc
        else:
            assert got[1:] == expected[1:], doc
        fast += took_fast_path(doc)
    assert 300 < fast < 3000  # both paths were exercised


def took_fast_path(doc: Any) -> bool:
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if not isinstance(kind, str) or kind not in _SPEC_WRITES:
        return False
    try:
        compiled(_SPEC_WRITES[kind])(doc, Walk(context={"name": _name_of(doc)}))
    except Fallback:
        return False
    return True
