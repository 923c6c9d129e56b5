"""The real daemon with its zygote under kill -9: of a child again and again while writes
flow, of the zygote, of the supervisor.

Real processes: ``python -m ecsm_actors supervisor --simulate`` (zygote, simulator,
registry, both controllers) in a run dir of the test, with restart settings shortened
through the environment. Orphans are looked for by pid and by the supervisor's process
group (it leads one: the harness starts it in its own session), never by name.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest

from ecsm_actors.config import load_config
from ecsm_actors.registry.client import RegistryClient
from ecsm_actors.supervisor.client import SupervisorClient
from tests.helpers import Processes, wait_until

STARTSECS = 0.1
FAST = {
    "ECSM_ACTORS_SUPERVISOR_STARTSECS": str(STARTSECS),
    "ECSM_ACTORS_SUPERVISOR_FLAP_RESTARTS": "1000",
    "ECSM_ACTORS_SUPERVISOR_BACKOFF_BASE": "0.05",
    "ECSM_ACTORS_SUPERVISOR_STOP_GRACE": "2",
}


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def group(pgid: int) -> set[int]:
    """Live (non-zombie) processes of process group ``pgid``."""
    out = set()
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid and not gone(pid):
                out.add(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return out


class Daemon:
    def __init__(self, processes: Processes, run_dir: Path) -> None:
        self.proc = processes.spawn("supervisor", "--simulate", env=FAST, log_name="supervisor")
        self.run_dir = run_dir
        self.cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)})
        self.client = SupervisorClient(self.cfg)
        wait_until(lambda: self.client.status()["ready"], timeout=30, what="every child ready")

    def rows(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in self.client.ps()}

    def pids(self) -> dict[str, int]:
        return {n: r["pid"] for n, r in self.rows().items()}

    def replaced(self, name: str, old: int, *, healthy: bool = False) -> dict[str, Any]:
        """Wait for ``name`` RUNNING as another pid (and up ``STARTSECS`` when ``healthy``)."""
        def check() -> dict[str, Any]:
            row = self.rows()[name]
            ok = row["state"] == "RUNNING" and row["pid"] not in (None, old) and (
                not healthy or (row["uptime"] or 0) >= STARTSECS + 0.05)
            return row if ok else {}

        return wait_until(check, timeout=15, interval=0.01, what=f"{name} replaced")

    def log(self) -> str:
        return (self.run_dir / "test-logs" / "supervisor.0.log").read_text()

    def spare(self, zygote: int | None = None) -> dict[str, int]:
        """The zygote's spare forked in advance and its intermediate process, the zygote's
        only descendants while it waits for an order ({} when there is none now)."""
        try:
            intermediates = psutil.Process(zygote or self.pids()["zygote"]).children()
            spares = [c for i in intermediates for c in i.children()]
        except psutil.NoSuchProcess:
            return {}
        if len(intermediates) != 1 or len(spares) != 1:
            return {}
        return {"intermediate": intermediates[0].pid, "spare": spares[0].pid}

    def only_children_in_group(self) -> None:
        """The supervisor, its children and the zygote's spare, nothing else."""
        def check() -> bool:
            expected = {self.proc.pid, *(p for p in self.pids().values() if p)}
            return group(self.proc.pid) - set(self.spare().values()) == expected

        wait_until(check, timeout=5, what="only the children (and a spare) in the group")


class Writer(threading.Thread):
    """Creates ECSMServices (0 replicas) back to back; remembers every acknowledged name."""

    def __init__(self, cfg: Any) -> None:
        super().__init__(name="writer", daemon=True)
        self.client = RegistryClient(cfg.registry_endpoint, timeout=2, deadline=15)
        self.acknowledged: list[str] = []
        self.errors: list[BaseException] = []
        self.stop = threading.Event()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            name = f"load-{i:05d}"
            try:
                self.client.create({
                    "apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
                    "metadata": {"name": name, "namespace": "default"},
                    "spec": {"deploymentStrategy": {"type": "Dynamic", "replicas": 0,
                                                    "nodePool": ["node-1"]},
                             "template": {"image": "app@1.0#sylixos"}}})
            except BaseException as e:  # noqa: BLE001 - reported by the test
                self.errors.append(e)
                return
            self.acknowledged.append(name)
            i += 1
            self.stop.wait(0.01)

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=20)
        self.client.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("victim", ["registry", "service-controller"])
def test_a_child_killed_twenty_times_under_writes_is_back_each_time_and_nothing_is_lost(
        processes: Processes, run_dir: Path, victim: str) -> None:
    d = Daemon(processes, run_dir)
    writer = Writer(d.cfg)
    writer.start()
    killed = []
    try:
        pid = d.replaced(victim, 0, healthy=True)["pid"]
        for _ in range(20):
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            row = d.replaced(victim, pid, healthy=True)
            assert row["lastExit"] == "SIGKILL"
            pid = row["pid"]
    finally:
        writer.finish()
    assert writer.errors == [] and len(writer.acknowledged) > 20
    registry = RegistryClient(d.cfg.registry_endpoint, timeout=5)
    stored = [o["metadata"]["name"] for o in registry.list("ECSMService").items]
    registry.close()
    assert sorted(stored) == writer.acknowledged  # each once, none lost
    assert d.rows()[victim]["restarts"] == 20
    assert all(f"{victim}: started pid {p} (forked by the zygote)" in d.log() for p in killed)
    wait_until(lambda: all(gone(p) for p in killed), timeout=5, what="every killed pid gone")
    d.only_children_in_group()


@pytest.mark.timeout(60)
def test_a_killed_zygote_leaves_children_running_and_later_restarts_still_work(
        processes: Processes, run_dir: Path) -> None:
    d = Daemon(processes, run_dir)
    before = d.pids()
    old_spare = wait_until(d.spare, timeout=5, what="the zygote's spare")
    os.kill(before["zygote"], signal.SIGKILL)
    zygote = d.replaced("zygote", before["zygote"])
    assert {n: p for n, p in d.pids().items() if n != "zygote"} == {
        n: p for n, p in before.items() if n != "zygote"}  # nobody else moved
    assert all(r["state"] == "RUNNING" for r in d.rows().values())
    wait_until(lambda: all(gone(p) for p in old_spare.values()), timeout=5,
               what="the dead zygote's spare and intermediate gone")

    old = before["hpa-controller"]
    spare = wait_until(lambda: d.spare(zygote["pid"]), timeout=5, what="a new spare")
    os.kill(old, signal.SIGKILL)
    new = d.replaced("hpa-controller", old)["pid"]
    assert new == spare["spare"]  # the restart took the spare forked in advance
    assert f"hpa-controller: started pid {new} (forked by the zygote)" in d.log()
    assert psutil.Process(new).ppid() == d.proc.pid
    assert new not in {c.pid for c in psutil.Process(zygote["pid"]).children(recursive=True)}

    d.client.stop("zygote")  # while the zygote is down: fresh interpreters
    d.replaced("hpa-controller", 0)
    os.kill(new, signal.SIGKILL)
    fresh = d.replaced("hpa-controller", new)["pid"]
    assert f"hpa-controller: started pid {fresh}\n" in d.log()
    d.client.start("zygote")
    wait_until(lambda: d.rows()["zygote"]["state"] == "RUNNING", timeout=15,
               what="the zygote back")
    d.only_children_in_group()


@pytest.mark.timeout(60)
def test_a_frozen_zygote_is_killed_and_replaced_and_the_child_starts_fresh_meanwhile(
        processes: Processes, run_dir: Path) -> None:
    d = Daemon(processes, run_dir)
    before = d.pids()
    os.kill(before["zygote"], signal.SIGSTOP)
    os.kill(before["service-controller"], signal.SIGKILL)
    fresh = d.replaced("service-controller", before["service-controller"])["pid"]
    assert f"service-controller: started pid {fresh}\n" in d.log()  # not forked
    assert "not forked (no answer within 1s)" in d.log()
    d.replaced("zygote", before["zygote"])
    assert gone(before["zygote"])
    os.kill(fresh, signal.SIGKILL)
    forked = d.replaced("service-controller", fresh)["pid"]
    assert f"service-controller: started pid {forked} (forked by the zygote)" in d.log()
    d.only_children_in_group()


@pytest.mark.timeout(60)
def test_nothing_is_left_after_the_supervisor_is_killed(
        processes: Processes, run_dir: Path) -> None:
    d = Daemon(processes, run_dir)
    pids = set(d.pids().values())
    spare = set(wait_until(d.spare, timeout=5, what="the zygote's spare").values())
    assert len(pids) == 5 and len(group(d.proc.pid) - spare) == 6
    os.kill(d.proc.pid, signal.SIGKILL)
    wait_until(lambda: not group(d.proc.pid), timeout=10,
               what="nothing left in the supervisor's process group")
    assert all(gone(p) for p in pids)
