"""The informer under faults: events dropped on the wire, the registry killed and
restarted mid-stream, the store wiped. Each time the SAME controller process (never
restarted) must reconcile every object to its final version."""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.errors import AlreadyExists, RegistryError
from tests import noop_harness as h
from tests.helpers import Processes, wait_until
from tests.registry_samples import service, with_changes

pytestmark = pytest.mark.timeout(90)

FAST_RECOVERY = {
    "ECSM_ACTORS_CONTROLLER_WATCH_DEADLINE": "1.0",
    "ECSM_ACTORS_CONTROLLER_WATCH_RETRY_CAP": "0.3",
    "ECSM_ACTORS_CONTROLLER_BACKOFF_CAP": "1.0",
    "ECSM_ACTORS_REGISTRY_REQUEST_TIMEOUT": "1.0",
    "ECSM_ACTORS_REGISTRY_HEARTBEAT_INTERVAL": "0.2",
}


def bulky(name: str, replicas: int = 1) -> dict[str, Any]:
    """An object of a few KiB, so that a handful of events fill the socket buffers."""
    obj = service(name, replicas=replicas)
    obj["spec"]["template"]["env"] = [{"name": f"VAR_{i}", "value": "x" * 40}
                                      for i in range(60)]
    return obj


def bump(obj: dict[str, Any]) -> dict[str, Any]:
    replicas = obj["spec"]["deploymentStrategy"]["replicas"] % 9 + 1
    meta = {k: v for k, v in obj["metadata"].items() if k != "resourceVersion"}
    return with_changes({**obj, "metadata": meta}, spec__deploymentStrategy__replicas=replicas)


def controller_log(processes: Processes) -> str:
    return "\n".join(p.read_text(errors="replace")
                     for p in (processes.run_dir / "test-logs").glob("controller-noop*.log"))


class Writer:
    """Writes objects until stopped, surviving registry outages (a write that timed out is
    simply sent again: updates are unconditional, a re-sent create is AlreadyExists)."""

    def __init__(self, run_dir: Path, names: list[str], rounds: int) -> None:
        self.run_dir = run_dir
        self.names = names
        self.rounds = rounds
        self.final: dict[str, int] = {}
        self.errors = 0
        self.retries = 0  # attempts the client itself sent again (RegistryClient.on_wait)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def write(self, c: Any, fn: Any) -> dict[str, Any]:
        while True:
            try:
                return fn()
            except AlreadyExists:
                raise
            except RegistryError:
                self.errors += 1

    def count_retry(self, attempt: int, elapsed: float) -> None:
        self.retries += 1

    def run(self) -> None:
        with h.client(self.run_dir, timeout=0.5) as c:
            c.on_wait = self.count_retry
            objects = {}
            for name in self.names:
                try:
                    objects[name] = self.write(c, lambda n=name: c.create(bulky(n)))
                except AlreadyExists:
                    objects[name] = c.get("ECSMService", "default", name)
            for _ in range(self.rounds):
                for name in self.names:
                    objects[name] = self.write(c, lambda n=name: c.update(bump(objects[n])))
            self.final = {f"default/{n}": o["metadata"]["resourceVersion"]
                          for n, o in objects.items()}


def test_events_dropped_on_the_wire_are_recovered_by_replay(
        processes: Processes, run_dir: Path) -> None:
    h.start_registry(processes, env={"ECSM_ACTORS_REGISTRY_PUB_HWM": "1"})
    h.start_noop(processes, ECSM_ACTORS_CONTROLLER_EVENT_BUFFER="1",
                 ECSM_ACTORS_NOOP_DELAY="0.001", ECSM_ACTORS_CONTROLLER_WORKERS="4")
    h.wait_reconciling(run_dir)
    writers = [Writer(run_dir, [f"w{i}-{j:03d}" for j in range(40)], rounds=3) for i in range(3)]
    for w in writers:
        w.thread.start()
    for w in writers:
        w.thread.join(timeout=60)
    final: dict[str, int | None] = {k: v for w in writers for k, v in w.final.items()}
    assert len(final) == 120
    with h.client(run_dir) as c:
        h.wait_converged(c, run_dir, final, timeout=30)
    log = controller_log(processes)
    assert "gap in events" in log or "heartbeat at resourceVersion" in log, \
        "no event was lost: the test did not exercise recovery"


def test_a_registry_killed_and_restarted_mid_stream_is_followed_without_a_controller_restart(
        processes: Processes, run_dir: Path) -> None:
    registry = h.start_registry(processes, env=FAST_RECOVERY)
    controller = h.start_noop(processes, **FAST_RECOVERY)
    h.wait_reconciling(run_dir)
    writer = Writer(run_dir, [f"svc-{j:03d}" for j in range(60)], rounds=4)
    writer.thread.start()
    wait_until(lambda: len(h.records(run_dir)) > 30, timeout=20, what="the stream under way")
    processes.kill(registry, signal.SIGKILL)
    registry.wait(timeout=5)
    h.start_registry(processes, env=FAST_RECOVERY)
    writer.thread.join(timeout=60)
    assert writer.errors + writer.retries > 0, \
        "the writer never saw the outage: the test did not kill mid-stream"
    with h.client(run_dir) as c:
        h.wait_converged(c, run_dir, dict(writer.final), timeout=30)
    assert controller.poll() is None, "the controller process was restarted or died"


def test_a_wiped_store_is_relisted_and_vanished_objects_are_reconciled_as_gone(
        processes: Processes, run_dir: Path) -> None:
    registry = h.start_registry(processes, env=FAST_RECOVERY)
    controller = h.start_noop(processes, **FAST_RECOVERY)
    h.wait_reconciling(run_dir)
    with h.client(run_dir) as c:
        old = [c.create(service(f"old-{i}", replicas=1)) for i in range(20)]
        h.wait_converged(c, run_dir, {h.spec_key(o): o["metadata"]["resourceVersion"]
                                      for o in old})
    processes.kill(registry, signal.SIGKILL)
    registry.wait(timeout=5)
    shutil.rmtree(h.config(run_dir).data_dir)
    h.start_registry(processes, env=FAST_RECOVERY)
    with h.client(run_dir) as c:
        new = [c.create(service(f"new-{i}", replicas=1)) for i in range(5)]
        final: dict[str, int | None] = {h.spec_key(o): None for o in old}
        final["default/probe"] = None
        final.update({h.spec_key(o): o["metadata"]["resourceVersion"] for o in new})
        h.wait_converged(c, run_dir, final, timeout=20)
    assert "new registry epoch" in controller_log(processes)
    assert controller.poll() is None and os.getpgid(controller.pid)
