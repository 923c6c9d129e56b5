"""Kill -9 the HPA controller in the middle of a scale-down stabilization window: its
successor must neither scale down early (the window lives in the HPA status, not in the
dead process's memory) nor start the window over."""

from __future__ import annotations

import signal
import time

import pytest

from ecsm_actors.registry.client import RegistryClient
from tests import hpa_harness as h
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(90)

WINDOW = 6.0


def test_a_killed_hpa_controller_still_honours_the_stabilization_window(
        processes: Processes, request: pytest.FixtureRequest) -> None:
    admin = h.start_simulator(processes)
    h.start_registry(processes)
    h.start_service_controller(processes)
    hpa_proc = h.start_hpa_controller(processes)
    c = RegistryClient(h.config(processes.run_dir).registry_endpoint, timeout=5.0)
    request.addfinalizer(c.close)
    request.addfinalizer(admin.close)
    sid = h.declare(c, admin, "api", target=50, max_replicas=4, down_window=int(WINDOW))

    admin.set_load(sid, cpu=140.0)
    wait_until(lambda: h.replicas(c, "api") == 3, timeout=15, what="replicas rising to 3")
    wait_until(lambda: h.running_count(admin, sid) == 3, timeout=15, what="3 running")
    time.sleep(2 * h.SYNC)  # a few recommendations of 3 land in the status

    admin.set_load(sid, cpu=5.0)
    dropped = time.monotonic()
    # Mid-window: at least one low recommendation recorded, then kill -9.
    wait_until(lambda: any(r["replicas"] == 1 for r in
                           h.hpa_status(c, "api").get("recommendations") or ()),
               timeout=10, what="a low recommendation in the status")
    time.sleep(max(0.0, dropped + WINDOW / 2 - time.monotonic()))
    processes.kill(hpa_proc, signal.SIGKILL)
    hpa_proc.wait(timeout=10)
    assert h.replicas(c, "api") == 3
    restarted = time.monotonic()
    h.start_hpa_controller(processes)

    # Not early: the recommendations of 3 made before the drop still hold the count.
    h.hold(lambda: h.replicas(c, "api") == 3, max(0.0, dropped + WINDOW - h.SYNC - 0.3
                                                  - time.monotonic()))
    wait_until(lambda: h.replicas(c, "api") == 1, timeout=20, what="scale-down after window")
    fell = time.monotonic()
    assert fell - dropped >= WINDOW - h.SYNC
    # Not reset: a successor that forgot the history would wait a full window after its
    # own start (and seed it with the old count).
    assert fell - restarted < WINDOW, (
        f"scale-down {fell - restarted:.1f}s after the restart: the window started over")
