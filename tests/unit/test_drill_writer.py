"""The drill's writer records exactly what the registry acknowledged, even when replies
are lost; its report and duration parsing say what they should."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ecsm_actors.drill import invariants as inv
from ecsm_actors.drill.cli import parse_duration
from ecsm_actors.drill.invariants import CheckResult
from ecsm_actors.drill.ledger import Ledger
from ecsm_actors.drill.report import FaultRecord, Report, percentile
from ecsm_actors.drill.snapshot import Snapshot
from ecsm_actors.drill.workload import ServicePlan
from ecsm_actors.drill.writer import DesiredStateWriter, Write
from ecsm_actors.errors import AlreadyExists, Conflict, Invalid, NotFound, Unavailable

WEB = ServicePlan(name="web", static=False, replicas=1, nodes=("node-1",),
                  image="web@1.0#sylixos")


class FakeRegistry:
    """Stores objects like the registry (generation bumps on spec change, OCC on
    resourceVersion); ``lose_next_reply`` commits a write but raises Unavailable."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 0
        self.lose_next_reply = False
        self.updates = 0

    def _commit(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = self.rv
        self.objects[(obj["kind"], obj["metadata"]["name"])] = copy.deepcopy(obj)
        if self.lose_next_reply:
            self.lose_next_reply = False
            raise Unavailable("reply lost")
        return copy.deepcopy(obj)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        if (kind, name) not in self.objects:
            raise NotFound(name)
        return copy.deepcopy(self.objects[(kind, name)])

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        if not obj.get("spec"):
            raise Invalid("spec required")
        if (obj["kind"], obj["metadata"]["name"]) in self.objects:
            raise AlreadyExists(obj["metadata"]["name"])
        obj = copy.deepcopy(obj)
        obj["metadata"]["generation"] = 1
        return self._commit(obj)

    def update(self, obj: dict[str, Any]) -> dict[str, Any]:
        self.updates += 1
        old = self.objects[(obj["kind"], obj["metadata"]["name"])]
        if obj["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise Conflict("stale")
        obj = copy.deepcopy(obj)
        gen = old["metadata"]["generation"]
        obj["metadata"]["generation"] = gen + (obj["spec"] != old["spec"])
        return self._commit(obj)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        if (kind, name) not in self.objects:
            raise NotFound(name)
        del self.objects[(kind, name)]

    def snapshot(self) -> Snapshot:
        return Snapshot(objects={(k, f"default/{n}"): o for (k, n), o in self.objects.items()})


def _scale(replicas: int) -> Write:
    def mutate(obj: dict[str, Any]) -> None:
        obj["spec"]["deploymentStrategy"]["replicas"] = replicas
    return Write(op="modify", kind="ECSMService", key="default/web", mutate=mutate)


def _settle(writer: DesiredStateWriter, write: Write, tries: int = 5) -> None:
    for _ in range(tries):
        try:
            if writer.attempt(write):
                return
        except Unavailable:
            continue
    raise AssertionError("write never settled")


def _consistent(registry: FakeRegistry, ledger: Ledger) -> CheckResult:
    return inv.check_acknowledged_writes(ledger.entries(), registry.snapshot())


def test_a_write_whose_reply_was_lost_is_recognised_not_redone() -> None:
    registry, ledger = FakeRegistry(), Ledger()
    writer = DesiredStateWriter(registry, ledger)
    _settle(writer, Write(op="create", kind="ECSMService", key="default/web",
                          manifest=WEB.manifest()))
    registry.lose_next_reply = True
    write = _scale(3)
    with pytest.raises(Unavailable):
        writer.attempt(write)
    assert _consistent(registry, ledger).ok          # in doubt: landed is acceptable
    updates = registry.updates
    _settle(writer, write)
    assert registry.updates == updates               # recognised as landed
    entry = ledger.get("ECSMService", "default/web")
    assert entry is not None and entry.pending is None
    assert entry.acked is not None and entry.acked.generation == 2
    assert _consistent(registry, ledger).ok


def test_a_conflict_rereads_and_reapplies_the_change() -> None:
    registry, ledger = FakeRegistry(), Ledger()
    writer = DesiredStateWriter(registry, ledger)
    _settle(writer, Write(op="create", kind="ECSMService", key="default/web",
                          manifest=WEB.manifest()))
    other = registry.get("ECSMService", "default", "web")   # someone else writes meanwhile
    other["metadata"]["annotations"] = {"x": "y"}
    registry.update(other)
    _settle(writer, _scale(2))
    assert registry.get("ECSMService", "default", "web")["spec"]["deploymentStrategy"][
        "replicas"] == 2
    assert _consistent(registry, ledger).ok


def test_a_lost_acknowledged_write_is_caught() -> None:
    registry, ledger = FakeRegistry(), Ledger()
    writer = DesiredStateWriter(registry, ledger)
    _settle(writer, Write(op="create", kind="ECSMService", key="default/web",
                          manifest=WEB.manifest()))
    _settle(writer, _scale(3))
    registry.objects[("ECSMService", "web")]["spec"]["deploymentStrategy"]["replicas"] = 1
    assert not _consistent(registry, ledger).ok


def test_a_refused_create_leaves_nothing_in_doubt_and_deletes_are_acknowledged() -> None:
    registry, ledger = FakeRegistry(), Ledger()
    writer = DesiredStateWriter(registry, ledger)
    bad = WEB.manifest()
    bad["spec"] = {}
    _settle(writer, Write(op="create", kind="ECSMService", key="default/web", manifest=bad))
    assert ledger.entries() == [] and writer.abandoned
    _settle(writer, Write(op="create", kind="ECSMService", key="default/web",
                          manifest=WEB.manifest()))
    _settle(writer, Write(op="delete", kind="ECSMService", key="default/web"))
    assert registry.objects == {}
    assert _consistent(registry, ledger).ok
    registry.create(WEB.manifest())                    # resurrected behind our back
    assert not _consistent(registry, ledger).ok


# -- report and CLI parsing ------------------------------------------------------------


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None


def test_the_report_passes_only_when_every_invariant_holds() -> None:
    faults = (FaultRecord(label="kill:registry", at=1.0, recovery=0.5, measured_by="canary"),
              FaultRecord(label="kill:registry", at=9.0, recovery=1.5, measured_by="canary"),
              FaultRecord(label="node-down", at=3.0, measured_by="ecsm", detail="not seen"))
    good = Report(seed=1, duration=45, services=20, faults=faults,
                  invariants=(CheckResult(name="a", checked=3),))
    assert good.ok and "RESULT: PASS" in good.render()
    assert good.by_kind()["kill:registry"] == {"injected": 2, "recovered": 2, "p50": 0.5,
                                               "p99": 1.5}
    assert good.to_dict()["recoveriesObserved"] == 2
    bad = Report(seed=1, duration=45, services=20, invariants=(
        CheckResult(name="a", checked=3), CheckResult(name="b", violations=("lost x",))))
    assert not bad.ok and "FAIL  b" in bad.render() and "lost x" in bad.render()
    assert not Report(seed=1, duration=45, services=20).ok   # nothing judged: no pass
    aborted = Report(seed=1, duration=45, services=20, aborted="did not start",
                     invariants=(CheckResult(name="a", checked=1),))
    assert not aborted.ok and "ABORTED: did not start" in aborted.render()


def test_durations_accept_units() -> None:
    assert parse_duration("45s") == 45.0
    assert parse_duration("5m") == 300.0
    assert parse_duration("90") == 90.0
    assert parse_duration("1.5h") == 5400.0
    with pytest.raises(ValueError):
        parse_duration("five minutes")
