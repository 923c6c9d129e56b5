"""The drill's invariant checkers pass a clean snapshot and catch each planted violation."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from ecsm_actors.drill import invariants as inv
from ecsm_actors.drill.ledger import (
    DELETED,
    Ledger,
    expectation_from_intent,
    expectation_from_object,
)
from ecsm_actors.drill.snapshot import (
    EcsmServiceView,
    ProcessRecord,
    Snapshot,
    ecsm_name,
    parse_ecsm_name,
    revision_of,
)
from ecsm_actors.drill.workload import HpaPlan, ServicePlan


def _stored(plan: ServicePlan, *, generation: int = 1, **kw: Any) -> dict[str, Any]:
    obj = plan.manifest(**kw)
    obj["metadata"].update(generation=generation, resourceVersion=generation * 10, uid="u")
    return obj


def _ecsm_row(obj: dict[str, Any], sid: str, *, factor: int | None = None,
              online: int | None = None, revision: str | None = None) -> EcsmServiceView:
    meta, spec = obj["metadata"], obj["spec"]
    strategy = spec["deploymentStrategy"]
    want = len(strategy["nodes"]) if strategy["type"] == "Static" else strategy["replicas"]
    nodes = strategy.get("nodes") or strategy.get("nodePool") or ["node-1"]
    name, tag = spec["template"]["image"].split("#")[0].split("@")
    return EcsmServiceView(
        id=sid, name=ecsm_name(meta["namespace"], meta["name"], revision or revision_of(obj)),
        factor=want if factor is None else factor, policy=strategy["type"].lower(),
        nodes=tuple(sorted(nodes)), instance_online=want if online is None else online,
        image=f"{name}@{tag}")


def _converge(obj: dict[str, Any], row: EcsmServiceView) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    obj["status"] = {
        "observedGeneration": obj["metadata"]["generation"], "replicas": row.factor,
        "readyReplicas": row.instance_online, "updatedReplicas": row.factor,
        "currentRevision": revision_of(obj), "underlyingServiceIDs": [row.id],
        "conditions": [{"type": "Available", "status": "True", "reason": "Ready"}],
    }
    return obj


WEB = ServicePlan(name="web", static=False, replicas=2, nodes=("node-1", "node-2"),
                  image="web@1.0#sylixos")
DB = ServicePlan(name="db", static=True, replicas=0, nodes=("node-2", "node-3"),
                 image="db@1.0#sylixos", chain=True)
HPA = ["default/app"]
APP = ServicePlan(name="app", static=False, replicas=2, nodes=(), image="app@1.0#sylixos",
                  hpa=HpaPlan(min_replicas=1, max_replicas=3, cpu_target=60))


def clean() -> Snapshot:
    objects, rows = {}, []
    for i, plan in enumerate((WEB, DB, APP)):
        obj = _stored(plan)
        row = _ecsm_row(obj, f"id-{i}")
        objects[("ECSMService", plan.key)] = _converge(obj, row)
        rows.append(row)
    hpa = APP.hpa.manifest("app")  # type: ignore[union-attr]
    hpa["metadata"].update(generation=1)
    hpa["status"] = {"desiredReplicas": 2, "currentReplicas": 2}
    objects[("ECSMHpa", "default/app")] = hpa
    return Snapshot(objects=objects, ecsm=tuple(rows))


def _with(snap: Snapshot, *, objects: dict | None = None,
          ecsm: tuple[EcsmServiceView, ...] | None = None) -> Snapshot:
    return Snapshot(objects={**snap.objects, **(objects or {})},
                    ecsm=snap.ecsm if ecsm is None else ecsm)


def test_a_clean_snapshot_passes_every_check_and_is_quiescent() -> None:
    snap = clean()
    for result in inv.convergence_checks(snap):
        assert result.ok, result.violations
        assert result.checked > 0
    assert inv.quiescent(snap) == (True, "")
    assert inv.lag(snap) == 0


def test_ecsm_names_parse_only_when_they_are_ours() -> None:
    ref = parse_ecsm_name("default.web.0123456789")
    assert ref is not None and ref.key == "default/web" and ref.revision == "0123456789"
    assert parse_ecsm_name("web") is None
    assert parse_ecsm_name("default.web.notahash00") is None
    assert parse_ecsm_name("default.web.0123456789.x") is None


# -- ECSM against spec -----------------------------------------------------------------


def test_a_duplicate_ecsm_service_is_caught() -> None:
    snap = clean()
    dup = dataclasses.replace(snap.ecsm[0], id="id-dup")
    bad = _with(snap, ecsm=snap.ecsm + (dup,))
    result = inv.check_ecsm_matches_spec(bad)
    assert not result.ok and "2 ECSM services named default.web." in result.violations[0]
    assert not inv.check_no_orphans(bad).ok
    assert inv.quiescent(bad)[0] is False


def test_a_missing_ecsm_service_is_caught() -> None:
    snap = clean()
    result = inv.check_ecsm_matches_spec(_with(snap, ecsm=snap.ecsm[1:]))
    assert result.violations == (
        f"default/web: no ECSM service {snap.ecsm[0].name} for revision "
        f"{snap.ecsm[0].name.rsplit('.', 1)[1]}",)


def test_a_wrong_factor_wrong_nodes_or_wrong_image_is_caught() -> None:
    snap = clean()
    web, db, app = snap.ecsm
    bad = _with(snap, ecsm=(dataclasses.replace(web, factor=3),
                            dataclasses.replace(db, nodes=("node-1",)),
                            dataclasses.replace(app, image="app@2.0")))
    text = "\n".join(inv.check_ecsm_matches_spec(bad).violations)
    assert "factor 3 != desired 2" in text
    assert "nodes ['node-1'] != spec nodes ['node-2', 'node-3']" in text
    assert "runs app@2.0, template says app@1.0#sylixos" in text


def test_a_dynamic_service_outside_its_node_pool_is_caught() -> None:
    snap = clean()
    web = dataclasses.replace(snap.ecsm[0], nodes=("node-3",))
    result = inv.check_ecsm_matches_spec(_with(snap, ecsm=(web,) + snap.ecsm[1:]))
    assert "outside nodePool" in result.violations[0]


def test_a_stale_revision_still_running_is_caught_but_one_at_zero_is_history() -> None:
    snap = clean()
    old = dataclasses.replace(snap.ecsm[0], id="id-old", name="default.web.aaaaaaaaaa",
                              factor=1, instance_online=1)
    result = inv.check_ecsm_matches_spec(_with(snap, ecsm=snap.ecsm + (old,)))
    assert result.violations == ("default/web: stale revision default.web.aaaaaaaaaa still "
                                 "at factor 1",)
    at_zero = dataclasses.replace(old, factor=0, instance_online=0)
    assert inv.check_ecsm_matches_spec(_with(snap, ecsm=snap.ecsm + (at_zero,))).ok


def test_revisions_beyond_the_history_limit_are_caught() -> None:
    snap = clean()
    old = tuple(dataclasses.replace(snap.ecsm[0], id=f"o{i}", name=f"default.web.{i:010x}",
                                    factor=0, instance_online=0) for i in range(3))
    result = inv.check_ecsm_matches_spec(_with(snap, ecsm=snap.ecsm + old))
    assert result.violations == ("default/web: 3 old revisions kept, history limit 2",)


def test_an_orphaned_ecsm_service_is_caught() -> None:
    snap = clean()
    orphan = EcsmServiceView(id="id-x", name="default.gone.0123456789", factor=1)
    result = inv.check_no_orphans(_with(snap, ecsm=snap.ecsm + (orphan,)))
    assert result.violations == ("ECSM service default.gone.0123456789 (id id-x) has no "
                                 "ECSMService default/gone",)
    foreign = EcsmServiceView(id="id-y", name="someone-elses", factor=1)
    assert inv.check_no_orphans(_with(snap, ecsm=snap.ecsm + (foreign,))).ok


# -- status ----------------------------------------------------------------------------


def _patch_status(snap: Snapshot, key: str, **status: Any) -> Snapshot:
    obj = copy.deepcopy(snap.objects[("ECSMService", key)])
    obj["status"].update(status)
    return _with(snap, objects={("ECSMService", key): obj})


def test_a_stale_status_is_caught() -> None:
    snap = clean()
    text = "\n".join(inv.check_statuses(_patch_status(
        snap, "default/web", observedGeneration=0, readyReplicas=1)).violations)
    assert "status.observedGeneration 0 != generation 1" in text
    assert "status.readyReplicas 1 != 2 on ECSM" in text


def test_a_status_that_misses_reality_is_caught() -> None:
    snap = clean()
    down = dataclasses.replace(snap.ecsm[0], instance_online=1)
    result = inv.check_statuses(_with(snap, ecsm=(down,) + snap.ecsm[1:]))
    assert result.violations == ("default/web: status.readyReplicas 2 != 1 on ECSM",)


def test_a_status_naming_a_gone_service_or_a_wrong_revision_is_caught() -> None:
    snap = clean()
    bad = _patch_status(snap, "default/db", underlyingServiceIDs=["id-1", "id-zombie"],
                        currentRevision="0000000000",
                        conditions=[{"type": "Available", "status": "False"}])
    text = "\n".join(inv.check_statuses(bad).violations)
    assert "names gone services ['id-zombie']" in text
    assert "currentRevision '0000000000'" in text
    assert "condition Available is False" in text


# -- HPA -------------------------------------------------------------------------------


def test_an_hpa_target_out_of_bounds_is_caught() -> None:
    snap = clean()
    app = copy.deepcopy(snap.objects[("ECSMService", "default/app")])
    app["spec"]["deploymentStrategy"]["replicas"] = 5
    result = inv.check_hpa_bounds(_with(snap, objects={("ECSMService", "default/app"): app}))
    assert result.violations == ("default/app: target app has 5 replicas, outside [1, 3]",)
    hpa = copy.deepcopy(snap.objects[("ECSMHpa", "default/app")])
    hpa["status"]["desiredReplicas"] = 0
    result = inv.check_hpa_bounds(_with(snap, objects={("ECSMHpa", "default/app"): hpa}))
    assert result.violations == ("default/app: status.desiredReplicas 0 outside [1, 3]",)


# -- acknowledged writes ---------------------------------------------------------------


def _ledger_of(snap: Snapshot) -> Ledger:
    ledger = Ledger()
    for (kind, key), obj in snap.objects.items():
        ledger.acknowledge(kind, key, expectation_from_object(obj, hpa_owned=key == "default/app"))
    return ledger


def test_every_acknowledged_write_present_passes() -> None:
    snap = clean()
    result = inv.check_acknowledged_writes(_ledger_of(snap).entries(), snap, ["default/app"])
    assert result.ok and result.checked == 4


def test_a_lost_write_is_caught() -> None:
    snap = clean()
    ledger = _ledger_of(snap)
    newer = _stored(WEB, generation=2, image="web@1.0#sylixos", revision=3)
    ledger.acknowledge("ECSMService", "default/web",
                       expectation_from_object(newer, hpa_owned=False))
    result = inv.check_acknowledged_writes(ledger.entries(), snap, ["default/app"])
    assert result.violations == (
        "ECSMService default/web: acknowledged generation>=2, registry has it present with "
        "another spec/annotations (generation 1)",)


def test_a_lost_object_and_a_resurrected_delete_are_caught() -> None:
    snap = clean()
    ledger = _ledger_of(snap)
    ledger.acknowledge("ECSMService", "default/db", DELETED)
    gone = Snapshot(objects={k: v for k, v in snap.objects.items() if k[1] != "default/web"},
                    ecsm=snap.ecsm)
    text = "\n".join(inv.check_acknowledged_writes(ledger.entries(), gone).violations)
    assert "ECSMService default/web: acknowledged generation>=1, registry has it absent" in text
    assert "ECSMService default/db: acknowledged deleted" in text


def test_the_replicas_an_hpa_owns_are_not_a_lost_write() -> None:
    snap = clean()
    ledger = _ledger_of(snap)
    app = copy.deepcopy(snap.objects[("ECSMService", "default/app")])
    app["spec"]["deploymentStrategy"]["replicas"] = 3
    app["metadata"]["generation"] = 2
    moved = _with(snap, objects={("ECSMService", "default/app"): app})
    assert inv.check_acknowledged_writes(ledger.entries(), moved, ["default/app"]).ok
    assert not inv.check_acknowledged_writes(ledger.entries(), moved, []).ok


def test_a_write_in_doubt_may_have_landed_or_not() -> None:
    snap = clean()
    ledger = _ledger_of(snap)
    intent = WEB.manifest(replicas=3)
    ledger.intend("ECSMService", "default/web", expectation_from_intent(intent, hpa_owned=False))
    assert inv.check_acknowledged_writes(ledger.entries(), snap, HPA).ok   # did not land
    landed = copy.deepcopy(snap.objects[("ECSMService", "default/web")])
    landed["spec"]["deploymentStrategy"]["replicas"] = 3
    landed["spec"]["template"]["defaultedField"] = "x"
    after = _with(snap, objects={("ECSMService", "default/web"): landed})
    assert inv.check_acknowledged_writes(ledger.entries(), after, HPA).ok  # landed
    landed["spec"]["deploymentStrategy"]["replicas"] = 1
    assert not inv.check_acknowledged_writes(ledger.entries(), after, HPA).ok  # neither


def test_a_create_in_doubt_may_be_absent() -> None:
    ledger = Ledger()
    ledger.intend("ECSMService", "default/web",
                  expectation_from_intent(WEB.manifest(), hpa_owned=False))
    assert inv.check_acknowledged_writes(ledger.entries(), Snapshot()).ok


def test_drill_annotations_are_part_of_an_acknowledged_write() -> None:
    snap = clean()
    ledger = _ledger_of(snap)
    annotated = copy.deepcopy(snap.objects[("ECSMService", "default/db")])
    annotated["metadata"]["annotations"] = {"drill.ecsm.sh/burst": "7", "other/x": "y"}
    ledger.acknowledge("ECSMService", "default/db",
                       expectation_from_object(annotated, hpa_owned=False))
    assert not inv.check_acknowledged_writes(ledger.entries(), snap).ok
    after = _with(snap, objects={("ECSMService", "default/db"): annotated})
    assert inv.check_acknowledged_writes(ledger.entries(), after, ["default/app"]).ok


# -- processes -------------------------------------------------------------------------


def test_a_process_left_running_after_the_stop_is_caught() -> None:
    recorded = [ProcessRecord(pid=100, create_time=5.0, name="registry"),
                ProcessRecord(pid=101, create_time=6.0, name="supervisor")]
    assert inv.check_no_leftover_processes(recorded, {}).ok
    assert inv.check_no_leftover_processes(recorded, {100: 99.0}).violations == (
        "unrecorded process pid 100 still running in the system's group",)
    result = inv.check_no_leftover_processes(recorded, {101: 6.0})
    assert result.violations == ("supervisor pid 101 still running",)
