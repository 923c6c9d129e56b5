"""The simulator process's node memory over HTTP: ``--node-memory`` or the environment
sizes every node, an instance that fits nowhere is refused with its reason until a start
places it, the admin API resizes a node and refuses a bad size with one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.cli.ecsm_cli import main
from ecsm_actors.errors import EcsmApiError
from tests.ecsm_sim import RunningSimulator, running_simulator, start_simulator
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(60)

MIB = 1 << 20
GIB = 1 << 30


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator("--nodes", "2", "--start-delay", "0.1", "--node-memory", "1Gi") as s:
        yield s


def memory(sim: RunningSimulator) -> dict[str, tuple[int, int]]:
    with sim.clientset() as cs:
        return {name: (c.memory_total, c.memory_free) for name, c in cs.nodes.capacities().items()}


def create(sim: RunningSimulator, name: str, memory_mb: int, factor: int) -> str:
    config: Any = {"sylixos": {"resources": {"cpu": None, "disk": None, "kernelObject": None,
                                             "memory": {"memoryLimitMB": memory_mb}}}}
    with sim.clientset() as cs:
        return str(cs.services.create({
            "name": name, "image": {"ref": "app@1.0#sylixos", "action": "run",
                                    "config": config},
            "node": {"names": None}, "factor": factor, "policy": "dynamic"})["id"])


def test_every_node_offers_the_memory_given_on_the_command_line(sim: RunningSimulator) -> None:
    assert memory(sim) == {"node-1": (GIB, GIB), "node-2": (GIB, GIB)}


def test_an_instance_without_room_is_refused_until_a_start_finds_room(
        sim: RunningSimulator) -> None:
    big = create(sim, "big", 512, 5)
    with sim.clientset() as cs:
        refused = wait_until(
            lambda: [c for c in cs.containers.list_all_by_service([big])
                     if c.deploy_status == "failed"], 5, what="a refused instance")
        (c,) = refused
        assert c.status == "exited" and "insufficient memory" in (c.failed_message or "")
        wait_until(lambda: cs.services.get(big).instance_online == 4, 5, what="4 online")
        assert memory(sim) == {"node-1": (GIB, 0), "node-2": (GIB, 0)}
        assert cs.containers.action_by_name(c.name, "start").status == "failure"
        sim.admin.set_node_memory("node-2", GIB + 512 * MIB)
        assert cs.containers.action_by_name(c.name, "start").status == "success"
        wait_until(lambda: cs.services.get(big).instance_online == 5, 5, what="5 online")
        assert memory(sim)["node-2"] == (GIB + 512 * MIB, 0)
        cs.services.delete(big)
    assert memory(sim)["node-1"] == (GIB, GIB)


def test_a_bad_node_memory_is_refused_with_one_line_naming_the_key(
        sim: RunningSimulator) -> None:
    with pytest.raises(EcsmApiError) as refused:
        sim.admin.set_node_memory("node-1", -5)
    assert "bytes: expected a number within" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert memory(sim)["node-1"][0] == GIB


def test_get_nodes_wide_shows_memory_allocated_over_capacity(
        sim: RunningSimulator, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("ECSMCLI_HOST", "ECSMCLI_PORT", "ECSMCLI_PROTOCOL", "ECSM_ACTORS_ECSM_HOST",
                "ECSM_ACTORS_ECSM_PORT", "ECSM_ACTORS_CONF"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    sim.admin.set_node_memory("node-2", GIB)
    web = create(sim, "cli-web", 256, 3)
    try:
        held = memory(sim)
        assert sorted(GIB - free for _, free in held.values()) == [256 * MIB, 512 * MIB]
        assert main(["--run-dir", str(sim.run_dir), "get", "nodes", "-o", "wide"]) == 0
        lines = capsys.readouterr().out.strip().splitlines()
        assert lines[0].split()[-2:] == ["TLS", "MEMORY"]
        cells = {line.split()[0]: line.split()[-1] for line in lines[1:]}
        expected = {256 * MIB: "256Mi/1Gi", 512 * MIB: "512Mi/1Gi"}
        assert cells == {name: expected[GIB - free] for name, (_, free) in held.items()}
    finally:
        with sim.clientset() as cs:
            cs.services.delete(web)


@pytest.fixture
def procs() -> Iterator[Processes]:
    run_dir = Path(tempfile.mkdtemp(prefix="ea-cap-", dir="/tmp"))
    run_dir.chmod(0o700)
    p = Processes(run_dir)
    try:
        yield p
    finally:
        p.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


def test_the_environment_sets_the_node_memory(procs: Processes) -> None:
    s = start_simulator(procs, "--nodes", "1",
                        env={"ECSM_ACTORS_SIMULATOR_NODE_MEMORY": "768Mi"})
    assert memory(s) == {"node-1": (768 * MIB, 768 * MIB)}


def test_a_bad_node_memory_flag_exits_2_with_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "ecsm_actors", "simulator", "--node-memory",
                           "lots"], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", "ECSM_ACTORS_RUN_DIR": "/nonexistent"})
    assert done.returncode == 2
    assert done.stdout.strip().splitlines() == [
        "error: config key simulator.node_memory: invalid value 'lots': "
        "could not convert string to float: 'lots'"]
    assert "Traceback" not in done.stderr
