"""The drill's schedule: seeded, reproducible, and always healable."""

from __future__ import annotations

from ecsm_actors.drill.schedule import (
    CHANGE_KINDS,
    FAULT_KINDS,
    ActionKind,
    Schedule,
    make_schedule,
)
from ecsm_actors.drill.workload import IMAGES, NODES


def test_the_same_seed_gives_the_same_schedule() -> None:
    a = make_schedule(seed=42, duration=120, services=50)
    b = make_schedule(seed=42, duration=120, services=50)
    assert a.actions == b.actions
    assert a.workload.manifests() == b.workload.manifests()


def test_another_seed_gives_another_schedule() -> None:
    a = make_schedule(seed=1, duration=120, services=50)
    b = make_schedule(seed=2, duration=120, services=50)
    assert a.actions != b.actions


def test_the_workload_mixes_strategies_hpas_and_dependency_chains() -> None:
    s = make_schedule(seed=7, duration=60, services=200)
    plans = [p for p in s.workload.services if not p.canary]
    assert len(plans) == 200
    assert any(p.static for p in plans) and any(not p.static for p in plans)
    assert s.workload.hpa_targets
    assert any(p.depends_on for p in plans)
    for p in plans:
        assert p.image in IMAGES
        assert set(p.nodes) <= set(NODES)
        assert not (p.hpa and p.static)


def test_dependencies_point_backwards_so_there_is_never_a_cycle() -> None:
    s = make_schedule(seed=3, duration=60, services=200)
    order = {p.name: i for i, p in enumerate(s.workload.services)}
    for p in s.workload.services:
        for dep in p.depends_on:
            assert order[dep] < order[p.name]
            assert s.workload.by_name[dep].protected


def test_a_short_drill_injects_every_kind_of_fault() -> None:
    for seed in range(50):
        s = make_schedule(seed=seed, duration=30, services=20)
        assert {a.kind for a in s.faults()} == set(FAULT_KINDS), seed


def test_every_fault_window_closes_before_the_end() -> None:
    for seed in range(20):
        s = make_schedule(seed=seed, duration=45, services=20)
        _assert_windows_close(s)


def _assert_windows_close(s: Schedule) -> None:
    ends = {ActionKind.FREEZE: ActionKind.THAW, ActionKind.NODE_DOWN: ActionKind.NODE_UP,
            ActionKind.ECSM_LATENCY: ActionKind.ECSM_HEAL,
            ActionKind.ECSM_ERRORS: ActionKind.ECSM_HEAL,
            ActionKind.ECSM_PARTITION: ActionKind.ECSM_HEAL}
    open_windows: dict[str, str] = {}
    for a in s.actions:
        assert 0 <= a.at <= s.duration - s.profile.cooldown + 1e-6
        if a.kind in ends:
            resource = {ActionKind.FREEZE: "freeze", ActionKind.NODE_DOWN: "node"}.get(
                a.kind, "ecsm")
            assert resource not in open_windows, f"overlapping {resource} windows at {a.at}"
            open_windows[resource] = a.target
        elif a.kind is ActionKind.ECSM_SERVICE_DELETE:
            assert "ecsm" not in open_windows, "ECSM's API is needed to delete behind its back"
        elif a.kind in (ActionKind.THAW, ActionKind.NODE_UP, ActionKind.ECSM_HEAL):
            resource = {ActionKind.THAW: "freeze", ActionKind.NODE_UP: "node"}.get(
                a.kind, "ecsm")
            assert open_windows.pop(resource) == a.target
    assert not open_windows


def test_changes_never_delete_protected_services_nor_scale_hpa_targets() -> None:
    s = make_schedule(seed=11, duration=300, services=100)
    plans = s.workload.by_name
    deleted: set[str] = set()
    for a in s.changes():
        plan = plans[a.target]
        assert not plan.canary
        if a.kind is ActionKind.DELETE:
            assert not plan.protected
            assert a.target not in deleted
            deleted.add(a.target)
        elif a.kind is ActionKind.RECREATE:
            assert a.target in deleted
            deleted.discard(a.target)
        else:
            assert a.target not in deleted, f"{a.kind} of deleted {a.target}"
        if a.kind is ActionKind.SCALE:
            assert plan.hpa is None
        if a.kind in (ActionKind.LOAD, ActionKind.HPA_BOUNDS):
            assert plan.hpa is not None
        if a.kind is ActionKind.HPA_BOUNDS:
            assert 1 <= a.p["min_replicas"] <= a.p["max_replicas"]
    assert {a.kind for a in s.changes()} == set(CHANGE_KINDS)


def test_the_timeline_is_ordered_and_serialisable() -> None:
    s = make_schedule(seed=9, duration=60, services=20)
    times = [a.at for a in s.actions]
    assert times == sorted(times)
    for a in s.actions:
        d = a.to_dict()
        assert d["kind"] == str(a.kind) and d["at"] == a.at


def test_even_a_small_workload_has_an_hpa_and_a_dependency_chain() -> None:
    for seed in range(30):
        workload = make_schedule(seed=seed, duration=45, services=20).workload
        assert workload.hpa_targets, seed
        assert any(p.depends_on for p in workload.services), seed
        assert len(workload.canaries) == 3


def test_store_etcd_adds_two_host_faults_and_keeps_the_rest_of_the_seeds_schedule() -> None:
    lmdb = make_schedule(seed=7, duration=45, services=20)
    etcd = make_schedule(seed=7, duration=45, services=20, store="etcd")
    added = [a for a in etcd.actions if a not in lmdb.actions]
    assert [a for a in etcd.actions if a in lmdb.actions] == list(lmdb.actions)
    assert {a.kind for a in added if a.is_fault} == {
        ActionKind.HOST_KILL, ActionKind.ETCD_MEMBER_KILL, ActionKind.QUORUM_LOSS}
    ends = {ActionKind.HOST_KILL: ActionKind.HOST_RESTART,
            ActionKind.ETCD_MEMBER_KILL: ActionKind.ETCD_MEMBER_START,
            ActionKind.QUORUM_LOSS: ActionKind.QUORUM_BACK}
    busy_until = 0.0
    for fault in (a for a in added if a.is_fault):
        end = next(a for a in added if a.kind is ends[fault.kind] and a.at >= fault.at)
        assert end.target == fault.target and end.at <= 45 - etcd.profile.cooldown
        assert fault.at >= busy_until   # one etcd fault at a time
        busy_until = end.at
    quorum = next(a for a in added if a.kind is ActionKind.QUORUM_LOSS)
    assert len(set(quorum.target.split(","))) == 2   # two members of three
