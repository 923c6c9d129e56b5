"""The drift sweep: ECSM listed once, compared with what settled passes saw, and only the
keys that differ enqueued."""

from __future__ import annotations

import tracemalloc
import weakref
from types import SimpleNamespace
from typing import Any

import pytest

from ecsm_actors.controllers.service.model import RevisionView
from ecsm_actors.controllers.service.naming import parse_any
from ecsm_actors.controllers.service.sweep import DriftSweep, Snapshot, diff, fingerprint
from ecsm_actors.ecsm.resources import paging
from ecsm_actors.ecsm.types import Page
from ecsm_actors.errors import EcsmUnavailable
from tests.unit.service_world import World, esvc


def view(sid: str, *, factor: int = 2, online: int = 2,
         nodes: tuple[str, ...] = ("node-1", "node-2")) -> RevisionView:
    return RevisionView(revision="0123456789", service_id=sid, factor=factor,
                        node_names=nodes, online=online)


def test_the_diff_enqueues_exactly_the_settled_keys_whose_ecsm_state_changed():
    pool = ("node-1", "node-2", "node-3")
    settled_down = {"ns/node-died": frozenset()}  # the others saw node-3 down already
    keys = ["ns/same", "ns/rescaled", "ns/deleted", "ns/crashed", "ns/node-died",
            "ns/unsettled"]
    records = {key: fingerprint([view(key)], pool,
                                settled_down.get(key, frozenset({"node-3"})), None)
               for key in [*keys[:5], "ns/no-longer-desired"]}
    snap = Snapshot(rows={"ns/same": [view("ns/same")],
                          "ns/rescaled": [view("ns/rescaled", factor=5)],
                          "ns/crashed": [view("ns/crashed", online=1)],
                          "ns/node-died": [view("ns/node-died")],
                          "ns/unsettled": [view("ns/unsettled", online=0)],
                          "ns/no-longer-desired": [view("ns/no-longer-desired", online=0)]},
                    names=frozenset(pool), down=frozenset({"node-3"}), containers={})
    assert diff(records, keys, snap) == ["ns/rescaled", "ns/deleted", "ns/crashed",
                                         "ns/node-died"]


def test_a_placement_on_every_node_is_enqueued_when_a_node_joins():
    names = frozenset({"node-1", "node-2"})
    records = {"ns/all": fingerprint([view("ns/all")], names, frozenset(), names)}
    snap = Snapshot(rows={"ns/all": [view("ns/all")]}, names=names | {"node-3"},
                    down=frozenset(), containers={})
    assert diff(records, ["ns/all"], snap) == ["ns/all"]
    assert diff(records, ["ns/all"], Snapshot(rows=snap.rows, names=names,
                                              down=frozenset(), containers={})) == []


def test_only_names_of_the_three_owned_parts_are_grouped_by_key():
    assert parse_any("default.web.0123456789") is not None
    assert [parse_any(n) for n in ("web", "default.web", "a.b.c.0123456789",
                                   "default.web.XYZ", "..0123456789")] == [None] * 5


@pytest.mark.parametrize("fault", ["deleted", "rescaled", "stopped", "node down"])
def test_a_sweep_finds_the_one_service_that_drifted_and_its_reconcile_repairs_it(fault):
    w = World()
    w.apply(esvc("web", replicas=2, pool=["node-1", "node-2"]))
    w.apply(esvc("api", replicas=1, pool=["node-3"]))
    w.settle("web", "api")
    assert w.sweep() == []
    web = next(s for s in w.state.services.values() if s.name.startswith("default.web."))
    if fault == "deleted":
        w.ecsm.services.delete(web.id)
    elif fault == "rescaled":
        detail = w.ecsm.services.get(web.id)
        w.ecsm.services.update(web.id, {"id": web.id, "name": web.name,
                                        "image": detail.raw["image"],
                                        "node": {"names": []}, "factor": 5,
                                        "policy": "dynamic"})
    elif fault == "stopped":
        victim = next(iter(w.state.containers_of(web.id)))
        w.ecsm.containers.action_by_name(victim.name, "stop")
    else:
        w.admin("POST", "nodes/node-2/down")
    assert w.sweep() == ["default/web"]
    w.settle("web")
    assert w.totals("default.web.") == (2, 2)
    assert w.sweep() == []


def test_a_sweep_costs_the_pages_of_the_service_list_and_the_node_list_only():
    w = World()
    names = [f"s{i}" for i in range(40)]
    for n in names:
        w.apply(esvc(n, replicas=1))
    w.settle(*names)
    assert len(w.reconciler.drift.records()) == 40
    w.advance(1.0)
    calls = len(w.transport.calls)
    assert w.sweep() == []
    assert w.transport.calls[calls:] == ["GET /api/v1/service", "GET /api/v1/node"]


def test_a_key_being_reconciled_again_is_not_swept_until_it_settles():
    w = World()
    w.apply(esvc("web", replicas=2))
    w.settle("web")
    w.apply(esvc("web", replicas=3))
    result = w.reconcile("web")  # scaling up: not settled, its own pace
    assert result.requeue_after == w.cfg.service.poll_interval / 4
    assert "default/web" not in w.reconciler.drift.records()
    assert w.sweep() == []


def test_a_pass_that_started_instances_looks_again_soon_then_slows_to_the_poll_interval():
    w = World()
    poll = w.cfg.service.poll_interval
    w.apply(esvc("web", replicas=2))
    assert w.reconcile("web").requeue_after == poll / 4  # created: often up by then
    assert w.reconcile("web").requeue_after == poll / 2  # still starting: only waiting
    assert w.reconcile("web").requeue_after == poll
    assert w.reconcile("web").requeue_after == poll
    w.settle("web")
    w.apply(esvc("web", replicas=3))
    assert w.reconcile("web").requeue_after == poll / 4  # settled in between: starts over


def test_keys_stranded_by_an_ecsm_outage_are_enqueued_by_the_first_sweep_that_reaches_it():
    w = World()
    w.apply(esvc("web", replicas=1))
    w.apply(esvc("db", replicas=1))
    w.settle("web", "db")
    w.apply(esvc("web", replicas=2))
    w.admin("POST", "faults", {"partition": True})
    assert w.reconcile("web").requeue is True  # backs off, maybe long after many of these
    with pytest.raises(EcsmUnavailable):
        w.sweep()  # ECSM still down: the sweep fails and releases nothing
    w.admin("DELETE", "faults")
    assert w.sweep() == ["default/web"]  # ECSM answered the sweep: retried now
    w.settle("web")
    assert w.sweep() == []  # repaired: nothing stranded any more



def test_a_thousand_settled_records_hold_less_than_half_a_kibibyte_each():
    """What a settled pass saw lives as long as the controller: node names decoded anew by
    each pass are held once, whatever the number of keys placed on them."""
    sweep = DriftSweep(None, None, interval=10.0)
    pool = tuple(f"node-{n}" for n in range(3))
    keys = [f"ns/svc-{i:04d}" for i in range(1000)]  # the informer's, held anyway
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for i, key in enumerate(keys):
            decoded = tuple("".join(n) for n in (pool[i % 3], pool[(i + 1) % 3]))
            sweep.settled(key, fingerprint(
                [view(f"{i:08d}-5d2c-4a7e-9f1b-3c6e8a0d{i:04d}", nodes=decoded)],
                ["".join(n) for n in pool], frozenset(), None))
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    held = sum(d.size_diff for d in after.compare_to(before, "filename"))
    assert len(sweep.records()) == 1000
    assert held / 1000 < 512


def test_a_record_shared_with_others_still_tells_its_own_drift():
    sweep = DriftSweep(None, None, interval=10.0)
    pool = ("node-1", "node-2")
    for key in ("ns/a", "ns/b"):
        sweep.settled(key, fingerprint([view(key)], list(pool), frozenset(), None))
    snap = Snapshot(rows={"ns/a": [view("ns/a")], "ns/b": [view("ns/b", factor=3)]},
                    names=frozenset(pool), down=frozenset(), containers={})
    assert diff(sweep.records(), ["ns/a", "ns/b"], snap) == ["ns/b"]
    down = Snapshot(rows=snap.rows, names=frozenset(pool), down=frozenset({"node-2"}),
                    containers={})
    assert diff(sweep.records(), ["ns/a"], down) == ["ns/a"]


class WireRow:
    """A listed ECSM service as decoded from the wire (what a page holds)."""

    def __init__(self, i: int) -> None:
        self.id = f"id-{i}"
        self.name = f"ns.svc-{i}.0123456789"
        self.factor = self.instance_online = 1
        self.node_list = (SimpleNamespace(node_name="node-1"),)
        self.policy, self.created_time = "dynamic", ""
        self.raw = {"name": self.name, "padding": "x" * 2000}


class PagedServices:
    """ECSM's service list in pages of ``size``, noting how many rows of the pages it
    answered before are still held by someone when it answers the next."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.answered: list[weakref.ref[WireRow]] = []
        self.held_at_each_page: list[int] = []

    def list(self, num: int, size: int) -> Page[Any]:
        self.held_at_each_page.append(sum(r() is not None for r in self.answered))
        rows = tuple(WireRow(i) for i in range((num - 1) * size, min(num * size, self.count)))
        self.answered += [weakref.ref(r) for r in rows]
        return Page(total=self.count, page_num=num, page_size=size, items=rows)

    def collect(self, page_size: int) -> paging.Listing[WireRow]:
        """Every row, as the clientset's own ``collect`` lists them."""
        return paging.collect(self.list, page_size, key=lambda row: row.id)


def test_a_sweep_holds_the_wire_rows_of_one_page_at_a_time():
    services = PagedServices(1000)
    nodes = SimpleNamespace(get=lambda max_age: (("node-1",), frozenset()))
    sweep = DriftSweep(SimpleNamespace(services=services), nodes, interval=10.0,
                       page_size=100)
    keys = [f"ns/svc-{i}" for i in range(1000)]
    for key in keys:
        sweep.settled(key, fingerprint([view(key.replace("ns/svc", "id"), factor=1,
                                             online=1, nodes=("node-1",))],
                                       ["node-1"], frozenset(), None))
    drifted: list[str] = []
    sweep.sweep(keys, drifted.append)
    assert drifted == []
    assert len(services.held_at_each_page) == 10
    assert max(services.held_at_each_page) == 0
