"""The service planner: scaling, rollouts within maxSurge/maxUnavailable, history, repair."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import pytest

from ecsm_actors.controllers.service.plan import (
    ContainerView,
    Create,
    Delete,
    Desired,
    Policy,
    Restart,
    RevisionView,
    Scale,
    needs_containers,
    placement,
    plan,
)
from ecsm_actors.controllers.service.rollout import resolve
from ecsm_actors.errors import TerminalError

NODES = ("node-1", "node-2", "node-3")


def desired(revision: str = "bbbbbbbbbb", replicas: int = 3, *, policy: Policy = Policy.DYNAMIC,
            nodes: tuple[str, ...] = NODES, surge: int = 1, unavailable: int = 0,
            history: int = 2, load: bool = False) -> Desired:
    return Desired(revision=revision, policy=policy, replicas=replicas, nodes=nodes,
                   max_surge=surge, max_unavailable=unavailable, history_limit=history,
                   load=load)


def rev(revision: str, factor: int, online: int | None = None, *, sid: str | None = None,
        nodes: tuple[str, ...] = NODES, policy: str = "dynamic", created: str = "",
        containers: tuple[ContainerView, ...] | None = None) -> RevisionView:
    return RevisionView(revision=revision, service_id=sid or f"id-{revision[:3]}",
                        factor=factor, node_names=nodes,
                        online=factor if online is None else online, policy=policy,
                        created=created or f"2026-01-01 00:00:0{ord(revision[0]) % 10}",
                        containers=containers)


# -- int-or-percent -------------------------------------------------------------------

@pytest.mark.parametrize(("rollout", "replicas", "surge", "unavailable"), [
    ({}, 4, 1, 0),                                           # the api's defaults: 1 / 0
    ({"maxSurge": "25%", "maxUnavailable": "25%"}, 4, 1, 1),
    ({"maxSurge": "25%", "maxUnavailable": "25%"}, 3, 1, 0),  # surge up, unavailable down
    ({"maxSurge": "25%", "maxUnavailable": "25%"}, 1, 1, 0),
    ({"maxSurge": 0, "maxUnavailable": 0}, 5, 0, 1),          # both zero → unavailable 1
    ({"maxSurge": "0%", "maxUnavailable": "10%"}, 5, 0, 1),   # 0.5 rounds down to 0 → 1
    ({"maxSurge": "50%", "maxUnavailable": "50%"}, 5, 3, 2),
    ({"maxSurge": 2, "maxUnavailable": 9}, 4, 2, 4),          # unavailable capped at desired
    ({"maxSurge": "30%", "maxUnavailable": "30%"}, 10, 3, 3),  # no float fuzz on exact values
])
def test_surge_rounds_up_and_unavailable_rounds_down(rollout, replicas, surge, unavailable):
    bounds = resolve(rollout, replicas)
    assert (bounds.max_surge, bounds.max_unavailable) == (surge, unavailable)


@pytest.mark.parametrize("value", ["abc", "-1", -2, True, "5%%"])
def test_a_bad_surge_is_a_terminal_error(value):
    with pytest.raises(TerminalError):
        resolve({"maxSurge": value}, 3)


def test_history_limit_defaults_to_two():
    assert resolve({}, 3).history_limit == 2
    assert resolve({"revisionHistoryLimit": 0}, 3).history_limit == 0


# -- steady state -----------------------------------------------------------------------

def test_nothing_observed_creates_the_current_revision_at_full_size():
    p = plan(desired(replicas=3), [])
    assert p.actions == (Create(revision="bbbbbbbbbb", factor=3, node_names=NODES),)


def test_zero_replicas_and_nothing_observed_creates_nothing():
    assert plan(desired(replicas=0), []).actions == ()


def test_a_healthy_current_revision_needs_no_action():
    p = plan(desired(), [rev("bbbbbbbbbb", 3)])
    assert p.idle
    assert p.summary.complete and p.summary.ready == 3 and p.summary.updated == 3


@pytest.mark.parametrize(("observed_factor", "wanted"), [(1, 3), (5, 3), (0, 3)])
def test_a_factor_changed_behind_our_back_is_scaled_back(observed_factor, wanted):
    p = plan(desired(replicas=wanted), [rev("bbbbbbbbbb", observed_factor)])
    assert p.actions == (Scale(revision="bbbbbbbbbb", service_id="id-bbb", factor=wanted,
                               node_names=NODES, policy="dynamic"),)


def test_scaling_down_applies_at_once_on_the_current_revision():
    p = plan(desired(replicas=1), [rev("bbbbbbbbbb", 3)])
    assert [a.factor for a in p.actions if isinstance(a, Scale)] == [1]


def test_a_static_node_list_change_updates_the_node_names_and_factor():
    d = desired(policy=Policy.STATIC, nodes=("node-1", "node-3"))
    p = plan(d, [rev("bbbbbbbbbb", 3, policy="static")])
    assert p.actions == (Scale(revision="bbbbbbbbbb", service_id="id-bbb", factor=2,
                               node_names=("node-1", "node-3"), policy="static"),)


def test_static_ignores_replicas_and_places_one_instance_per_node():
    p = plan(desired(policy=Policy.STATIC, replicas=7), [])
    assert p.actions == (Create(revision="bbbbbbbbbb", factor=3, node_names=NODES),)


def test_a_strategy_change_updates_the_policy_in_place():
    p = plan(desired(policy=Policy.STATIC), [rev("bbbbbbbbbb", 3, policy="dynamic")])
    assert p.actions == (Scale(revision="bbbbbbbbbb", service_id="id-bbb", factor=3,
                               node_names=NODES, policy="static"),)


# -- repair -------------------------------------------------------------------------------

def c(name: str, node: str, status: str = "running") -> ContainerView:
    return ContainerView(name=name, node_name=node, status=status)


def test_crashed_and_stopped_containers_are_started_and_paused_ones_unpaused():
    containers = (c("a", "node-1", "exited"), c("b", "node-2", "stop"), c("x", "node-3", "paused"),
                  c("d", "node-3"), c("e", "node-1", "created"))
    p = plan(desired(replicas=5), [rev("bbbbbbbbbb", 5, online=2, containers=containers)])
    assert [(a.container_name, a.action) for a in p.actions if isinstance(a, Restart)] == [
        ("a", "start"), ("b", "start"), ("x", "unpause")]


def test_containers_on_a_down_node_are_not_restarted():
    containers = (c("a", "node-1", "stop"), c("b", "node-2"))
    p = plan(desired(replicas=2, policy=Policy.STATIC, nodes=("node-1", "node-2")),
             [rev("bbbbbbbbbb", 2, online=1, policy="static", nodes=("node-1", "node-2"),
                  containers=containers)], down={"node-1"})
    assert not [a for a in p.actions if isinstance(a, Restart)]
    assert p.summary.down_nodes == ("node-1",)


def test_load_revisions_are_never_started_and_count_existing_instances_as_ready():
    containers = (c("a", "node-1", "stop"), c("b", "node-2", "stop"))
    d = desired(replicas=2, load=True)
    p = plan(d, [rev("bbbbbbbbbb", 2, online=0, containers=containers)])
    assert p.idle and p.summary.ready == 2


def test_dynamic_re_places_away_from_a_down_node():
    p = plan(desired(), [rev("bbbbbbbbbb", 3, online=2)], down={"node-2"})
    assert p.actions == (Scale(revision="bbbbbbbbbb", service_id="id-bbb", factor=3,
                               node_names=("node-1", "node-3"), policy="dynamic"),)
    assert p.summary.down_nodes == ()


def test_dynamic_keeps_the_pool_when_every_pool_node_is_down():
    d = desired(nodes=("node-2",), replicas=1)
    assert placement(d, frozenset({"node-2"})) == ("node-2",)
    p = plan(d, [rev("bbbbbbbbbb", 1, online=0, nodes=("node-2",))], down={"node-2"})
    assert p.idle and p.summary.down_nodes == ("node-2",)


# -- when to list containers ----------------------------------------------------------------

def test_a_healthy_steady_state_does_not_list_containers():
    assert not needs_containers(desired(), [rev("bbbbbbbbbb", 3)])


@pytest.mark.parametrize("observed", [
    [rev("bbbbbbbbbb", 3, online=2)],                       # something is not running
    [rev("bbbbbbbbbb", 3), rev("aaaaaaaaaa", 1)],           # a rollout is in flight
])
def test_unhealthy_or_rolling_states_list_containers(observed):
    assert needs_containers(desired(), observed)


# -- history ----------------------------------------------------------------------------------

def test_old_revisions_at_zero_are_kept_up_to_the_history_limit_newest_first():
    olds = [rev(r * 10, 0, created=f"2026-01-01 00:00:0{i}") for i, r in enumerate("acde")]
    p = plan(desired(history=2), [rev("bbbbbbbbbb", 3), *olds])
    assert sorted(a.revision for a in p.actions if isinstance(a, Delete)) == ["aaaaaaaaaa",
                                                                               "cccccccccc"]


def test_status_lists_the_current_revision_first():
    p = plan(desired(), [rev("aaaaaaaaaa", 0, sid="old"), rev("bbbbbbbbbb", 3, sid="new")])
    assert p.summary.service_ids == ("new", "old")


# -- a rollout driven to its end against a model of ECSM ------------------------------------------

@dataclass
class ModelService:
    revision: str
    sid: str
    factor: int
    nodes: tuple[str, ...]
    policy: str
    created: int
    containers: list[list[str]] = field(default_factory=list)  # [name, node, status]


class ModelEcsm:
    """Applies plans synchronously; new containers are ``created`` until the next tick.
    Dynamic scale-down removes not-running containers first, then the newest."""

    def __init__(self, policy: str = "dynamic") -> None:
        self.policy = policy
        self.services: dict[str, ModelService] = {}
        self.ids = itertools.count(1)
        self.clock = itertools.count(1)

    def observe(self) -> list[RevisionView]:
        return [RevisionView(revision=s.revision, service_id=s.sid, factor=s.factor,
                             node_names=s.nodes, policy=s.policy, created=f"{s.created:08d}",
                             online=sum(1 for c in s.containers if c[2] == "running"),
                             containers=tuple(ContainerView(name=c[0], node_name=c[1],
                                                            status=c[2]) for c in s.containers))
                for s in self.services.values()]

    def _fit(self, s: ModelService) -> None:
        if s.policy == "static":
            s.containers = [c for c in s.containers if c[1] in s.nodes]
            have = {c[1] for c in s.containers}
            for n in s.nodes:
                if n not in have:
                    s.containers.append([f"c{next(self.ids)}", n, "created"])
            return
        s.containers.sort(key=lambda c: c[2] == "running", reverse=True)
        del s.containers[s.factor:]
        while len(s.containers) < s.factor:
            node = s.nodes[len(s.containers) % len(s.nodes)]
            s.containers.append([f"c{next(self.ids)}", node, "created"])

    def apply(self, actions) -> None:
        for a in actions:
            if isinstance(a, Create):
                s = ModelService(revision=a.revision, sid=f"id-{a.revision}", factor=a.factor,
                                 nodes=a.node_names, policy=self.policy, created=next(self.clock))
                self.services[a.revision] = s
            elif isinstance(a, Scale):
                s = self.services[a.revision]
                s.factor, s.nodes, s.policy = a.factor, a.node_names, a.policy
            elif isinstance(a, Delete):
                del self.services[a.revision]
                continue
            else:
                continue
            self._fit(s)

    def tick(self) -> None:
        for s in self.services.values():
            for cont in s.containers:
                cont[2] = "running"

    def totals(self) -> tuple[int, int]:
        cs = [cont for s in self.services.values() for cont in s.containers]
        return len(cs), sum(1 for cont in cs if cont[2] == "running")


def roll(d_old: Desired, d_new: Desired, *, max_passes: int = 200) -> tuple[ModelEcsm, list]:
    ecsm = ModelEcsm(d_old.policy)
    for _ in range(5):
        ecsm.apply(plan(d_old, ecsm.observe()).actions)
        ecsm.tick()
    assert ecsm.totals() == (d_old.replicas if d_old.policy is Policy.DYNAMIC
                             else len(d_old.nodes),) * 2
    seen = []
    for _ in range(max_passes):
        p = plan(d_new, ecsm.observe())
        ecsm.apply(p.actions)
        seen.append(ecsm.totals())
        ecsm.tick()
        seen.append(ecsm.totals())
        if p.idle and p.summary.complete:
            return ecsm, seen
        assert not [a for a in p.actions if isinstance(a, Scale) and a.policy != d_new.policy]
    raise AssertionError(f"rollout did not finish: {ecsm.observe()}")


@pytest.mark.parametrize(("replicas", "surge", "unavailable"), [
    (3, 1, 0), (3, 0, 1), (5, 2, 1), (4, 1, 1), (1, 1, 0), (1, 0, 1), (10, 3, 0), (10, 0, 3),
    (6, 6, 0), (6, 0, 6),
])
def test_a_dynamic_rollout_respects_surge_and_unavailable_at_every_instant(
        replicas, surge, unavailable):
    old = desired("aaaaaaaaaa", replicas, surge=surge, unavailable=unavailable)
    new = replace(old, revision="bbbbbbbbbb")
    ecsm, seen = roll(old, new)
    for total, running in seen:
        assert total <= replicas + surge
        assert running >= replicas - unavailable
    factors = {s.revision: s.factor for s in ecsm.services.values()}
    assert factors == {"bbbbbbbbbb": replicas, "aaaaaaaaaa": 0}


@pytest.mark.parametrize(("surge", "unavailable"), [(1, 0), (0, 1), (2, 1), (0, 3)])
def test_a_static_rollout_moves_node_by_node_within_bounds(surge, unavailable):
    nodes = ("node-1", "node-2", "node-3", "node-4")
    old = desired("aaaaaaaaaa", policy=Policy.STATIC, nodes=nodes, surge=surge,
                  unavailable=unavailable)
    new = replace(old, revision="bbbbbbbbbb")
    ecsm, seen = roll(old, new)
    for total, running in seen:
        assert total <= 4 + surge and running >= 4 - unavailable
    assert sorted(ecsm.services["bbbbbbbbbb"].nodes) == list(nodes)
    assert "aaaaaaaaaa" not in ecsm.services  # ECSM refuses a static service without nodes


def test_a_static_rollout_starts_where_old_instances_still_run():
    old = desired("aaaaaaaaaa", policy=Policy.STATIC, nodes=("node-1", "node-2"), surge=1)
    new = replace(old, revision="bbbbbbbbbb", nodes=("node-3", "node-2"))
    ecsm, _ = roll(old, new)
    assert sorted(ecsm.services["bbbbbbbbbb"].nodes) == ["node-2", "node-3"]


def test_a_history_limit_of_zero_deletes_the_old_revision_when_it_reaches_zero():
    old = desired("aaaaaaaaaa", 2, history=0)
    ecsm, _ = roll(old, replace(old, revision="bbbbbbbbbb"))
    assert list(ecsm.services) == ["bbbbbbbbbb"]


def test_undo_scales_a_kept_revision_back_up_instead_of_creating_one():
    old = desired("aaaaaaaaaa", 3)
    ecsm, _ = roll(old, replace(old, revision="bbbbbbbbbb"))
    kept_id = ecsm.services["aaaaaaaaaa"].sid
    p = plan(old, ecsm.observe())
    assert not [a for a in p.actions if isinstance(a, Create)]
    assert [a for a in p.actions if isinstance(a, Scale)][0].service_id == kept_id


def test_a_rollout_with_a_stuck_new_revision_never_drops_below_min_available():
    old = desired("aaaaaaaaaa", 4, surge=1, unavailable=1)
    new = replace(old, revision="bbbbbbbbbb")
    ecsm = ModelEcsm()
    ecsm.apply(plan(old, []).actions)
    ecsm.tick()
    for _ in range(20):  # the new revision never becomes ready
        ecsm.apply(plan(new, ecsm.observe()).actions)
        total, running = ecsm.totals()
        assert total <= 5 and running >= 3
    assert ecsm.services["aaaaaaaaaa"].factor >= 3


def test_a_scale_up_during_a_rollout_still_ends_at_the_new_size():
    old = desired("aaaaaaaaaa", 3)
    ecsm, _ = roll(old, replace(old, revision="bbbbbbbbbb", replicas=6))
    assert ecsm.services["bbbbbbbbbb"].factor == 6


def test_crashed_old_instances_are_removed_first_so_a_zero_surge_rollout_is_not_stuck():
    old = desired("aaaaaaaaaa", 3, surge=0, unavailable=1)
    new = replace(old, revision="bbbbbbbbbb")
    ecsm = ModelEcsm()
    ecsm.apply(plan(old, []).actions)
    ecsm.tick()
    for cont in ecsm.services["aaaaaaaaaa"].containers[:2]:
        cont[2] = "exited"  # crashed; the model ignores restarts
    first = plan(new, ecsm.observe())
    cuts = [a for a in first.actions if isinstance(a, Scale)]
    assert [(a.revision, a.factor) for a in cuts] == [("aaaaaaaaaa", 2)]
    ecsm.apply(first.actions)
    assert ecsm.totals() == (2, 1)  # the crashed one went, the running one stayed
    for _ in range(20):
        p = plan(new, ecsm.observe())
        ecsm.apply(p.actions)
        ecsm.tick()
        if p.idle and p.summary.complete:
            break
    assert ecsm.services["bbbbbbbbbb"].factor == 3 and ecsm.totals() == (3, 3)
