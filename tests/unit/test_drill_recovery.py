"""How the drill times a recovery: later faults that block the repair are left out, its
own instrument (canary writes) never queues behind a write burst, and a deleted ECSM
service that comes back is whole. Pure bookkeeping, no processes."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from ecsm_actors.drill import faults
from ecsm_actors.drill.faults import FaultInjector, burst_keys
from ecsm_actors.drill.ledger import Ledger
from ecsm_actors.drill.recovery import (
    Observation,
    Probe,
    RecoveryTracker,
    child_replaced,
    ecsm_service_whole,
)
from ecsm_actors.drill.schedule import ActionKind, action, make_schedule
from ecsm_actors.drill.snapshot import EcsmServiceView, ProcessRecord
from ecsm_actors.drill.writer import DesiredStateWriter, Write

REPAIRS = frozenset({"canary", "ecsm"})


def probe(check: Any, *, injected: float = 0.0, measured_by: str = "ecsm") -> Probe:
    return Probe(label="container-crash", at=injected, injected=injected, check=check,
                 measured_by=measured_by, deadline=injected + 60.0)


def test_a_later_fault_that_blocks_the_repair_is_left_out_of_the_recovery() -> None:
    tracker = RecoveryTracker()
    healed = [False]
    tracker.add(probe(lambda obs: healed[0]))
    tracker.block("ecsm", REPAIRS, 1.0)      # ECSM partitioned 1 s after the crash
    tracker.evaluate(Observation(at=2.0))
    tracker.end_window("ecsm", 4.0)
    healed[0] = True
    tracker.evaluate(Observation(at=5.0))
    [record] = tracker.records()
    assert record.recovery == pytest.approx(2.0)   # 1 s before the partition, 1 s after
    assert record.blocked == pytest.approx(3.0)


def test_a_fault_injected_while_ecsm_fails_is_measured_once_ecsm_is_back() -> None:
    tracker = RecoveryTracker()
    tracker.block("ecsm", REPAIRS, 1.0)
    tracker.add(probe(lambda obs: obs.at >= 5.0, injected=2.0, measured_by="canary"))
    tracker.end_window("ecsm", 4.0)
    tracker.evaluate(Observation(at=5.0))
    [record] = tracker.records()
    assert (record.recovery, record.blocked) == pytest.approx((1.0, 2.0))


def test_a_frozen_child_stops_blocking_once_the_watchdog_replaced_it() -> None:
    tracker = RecoveryTracker()
    tracker.add(probe(lambda obs: obs.at >= 6.0))
    tracker.block("freeze", REPAIRS, 1.0, over=child_replaced("registry", 10))
    tracker.evaluate(Observation(at=3.0, ps=[{"name": "registry", "pid": 11}]))
    tracker.end_window("freeze", 5.0)  # the thaw finds nothing left to thaw
    tracker.evaluate(Observation(at=6.0))
    assert tracker.records()[0].blocked == pytest.approx(2.0)


def test_a_node_down_blocks_only_the_services_on_it() -> None:
    tracker = RecoveryTracker()
    elsewhere = probe(lambda obs: obs.at >= 5.0)
    elsewhere.nodes = frozenset({"node-1"})
    tracker.add(elsewhere)
    tracker.block("node", frozenset({"ecsm"}), 1.0, node="node-2")
    tracker.evaluate(Observation(at=5.0))
    assert tracker.records()[0].recovery == pytest.approx(5.0)


def test_a_fault_that_blocks_only_other_probes_changes_nothing() -> None:
    tracker = RecoveryTracker()
    tracker.add(probe(lambda obs: obs.at >= 5.0, measured_by="canary"))
    tracker.block("node", frozenset({"ecsm"}), 1.0, node="node-1")  # canaries re-place
    tracker.evaluate(Observation(at=5.0))
    assert tracker.records()[0].recovery == pytest.approx(5.0)


def test_a_deleted_ecsm_service_back_under_its_old_id_is_whole() -> None:
    check = ecsm_service_whole("default.web.abc", old_id="id-1")
    row = EcsmServiceView(id="id-1", name="default.web.abc", factor=2, instance_online=2)
    assert check(Observation(at=1.0, ecsm=())) is False
    assert check(Observation(at=2.0, ecsm=(row,))) is True


def test_canary_writes_go_before_the_other_keys_waiting() -> None:
    writer = DesiredStateWriter(client=None, ledger=Ledger())
    for i in range(3):
        writer.submit(Write(op="modify", kind="ECSMService", key=f"default/svc-{i}",
                            label="burst"))
    writer.submit(Write(op="modify", kind="ECSMService", key="default/drill-canary-0",
                        label="canary"))
    assert [w.key for w in writer._heads()][0] == "default/drill-canary-0"


def test_a_write_burst_leaves_the_canaries_alone() -> None:
    keys = ["default/svc-0002", "default/drill-canary-0", "default/svc-0001"]
    assert burst_keys(keys) == ["default/svc-0001", "default/svc-0002"]


def test_a_200_service_drill_has_a_canary_for_each_fault_of_a_dense_burst() -> None:
    # seed 1 injects 6 canary-timed faults from 144.9 s to 148.0 s: the sixth found five busy
    workload = make_schedule(seed=1, duration=600, services=200).workload
    assert len(workload.canaries) >= 7


def test_a_write_burst_blocks_the_repair_from_the_moment_it_pauses_the_controller(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: None)  # no process signalled
    tracker = RecoveryTracker()
    tracker.add(probe(lambda obs: True, injected=time.monotonic() - 1.0))
    record = ProcessRecord(pid=4242, create_time=0.0, name="service-controller")
    judged: list[float] = []

    def pending() -> int:  # the probe is judged while the burst is still draining
        if not judged:
            judged.append(time.monotonic())
            tracker.evaluate(Observation(at=judged[0]))
        return 0

    system = SimpleNamespace(child=lambda name: {"pid": 4242}, record_of=lambda pid: record,
                             same_process=lambda r: True)
    ctx = SimpleNamespace(system=system, tracker=tracker, canary_change=lambda on_done: None,
                          registry_keys=lambda kind: ["default/svc-0001"],
                          writer=SimpleNamespace(submit=lambda w: None, pending=pending),
                          hpa_owned=lambda kind, key: False)
    FaultInjector(ctx).inject(action(1.0, ActionKind.WRITE_BURST, "service-controller",
                                     writes=1, seconds=0.0))
    assert tracker.records()[0].blocked > 0
