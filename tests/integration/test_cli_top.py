"""``ecsm-cli top nodes|services|esvc`` against a simulator with a known load, and the
target of the ECSMHpa (from a real registry) beside the current utilization."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.ecsm_sim import start_simulator
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import RunCli, StartRegistry, cli_runner
from tests.registry_samples import hpa

pytestmark = pytest.mark.timeout(60)

WEB = "default.web.0123456789"  # a revision of the ECSMService default/web
MIB = 1 << 20


@pytest.fixture
def cli(processes: Processes, registry: StartRegistry, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> RunCli:
    for var in ("ECSMCLI_HOST", "ECSMCLI_PORT", "ECSMCLI_PROTOCOL", "ECSM_ACTORS_CONF"):
        monkeypatch.delenv(var, raising=False)
    return cli_runner(processes, registry, monkeypatch, capsys)


@pytest.fixture
def loaded(processes: Processes) -> dict[str, Any]:
    """Two nodes; ``WEB`` with two instances on node-1 under 90 % CPU and 64 MiB in all,
    ``plain`` (not the operator's) idle on node-2."""
    sim = start_simulator(processes, "--nodes", "2", "--start-delay", "0")
    cs = sim.clientset()
    ids = {}
    for name, node, factor in ((WEB, "node-1", 2), ("plain", "node-2", 1)):
        cs.services.create({"name": name, "image": {"ref": "app@1.0#sylixos", "action": "run",
                                                    "config": None},
                            "node": {"names": [node]}, "factor": factor, "policy": "dynamic"})
        ids[name] = next(s.id for s in cs.services.list_all() if s.name == name)
    sim.admin.set_load(ids[WEB], cpu=90.0, memory=64 * MIB)
    cs.close()
    return ids


def rows(out: str) -> dict[str, list[str]]:
    lines = [line.split() for line in out.strip().splitlines()]
    return {r[0]: r for r in lines}


def test_top_services_shows_the_load_and_the_hpa_target_beside_the_utilization(
        cli: RunCli, loaded: dict[str, Any], registry: StartRegistry) -> None:
    _, client = registry()
    client.create(hpa("web", target="web"))  # a CPU target of 60 %

    code, out, err = cli("top", "services")
    assert code == 0, err
    table = rows(out)
    assert table["NAME"] == ["NAME", "READY", "CPU(%)", "CPU/TARGET", "MEMORY",
                             "MEMORY/TARGET"]
    web = table[WEB]
    assert web[1] == "2/2"
    assert 87.0 <= float(web[2]) <= 93.0  # 90 % split over two instances, ±3 % each
    current, target = web[3].split("/")
    assert 43 <= int(current.rstrip("%")) <= 47 and target == "60%"
    assert web[4] in ("62Mi", "63Mi", "64Mi", "65Mi", "66Mi")
    assert table["plain"][2:4] == ["0.0", "0%"]  # idle, and no HPA: no target

    code, out, _ = cli("top", "esvc", "-o", "json")
    [doc] = json.loads(out)
    assert (doc["namespace"], doc["name"], doc["revisions"], doc["running"]) == (
        "default", "web", 1, 2)
    assert doc["targets"] == {"cpu": 60.0}
    assert 43 <= doc["cpuUtilization"] <= 47


def test_top_nodes_shows_each_node_cpu_memory_and_containers(
        cli: RunCli, loaded: dict[str, Any]) -> None:
    code, out, err = cli("top", "nodes")
    assert code == 0, err
    table = rows(out)
    assert table["NAME"] == ["NAME", "CPU(%)", "MEMORY", "MEMORY(%)", "CONTAINERS"]
    assert float(table["node-1"][1].rstrip("%")) > 2.0  # the loaded node works
    assert table["node-2"][1] == "2.0%"  # an idle node: its own 2 %
    assert table["node-1"][4] == "2/2" and table["node-2"][4] == "1/1"
    code, out, _ = cli("top", "nodes", "-o", "json")
    assert [d["name"] for d in json.loads(out)] == ["node-1", "node-2"]


def test_top_without_a_registry_still_shows_ecsm_figures_and_says_why_no_target(
        processes: Processes, loaded: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from ecsm_actors.cli.ecsm_cli import main

    monkeypatch.setenv("ECSM_ACTORS_RUN_DIR", str(processes.run_dir))
    code = main(["top", "svc"])
    out, err = capsys.readouterr()
    assert code == 0
    assert rows(out)[WEB][3].endswith("%") and "/" not in rows(out)[WEB][3]
    assert "note: no HPA targets shown" in err


def test_top_watch_without_a_terminal_prints_one_block_after_another(
        processes: Processes, loaded: dict[str, Any]) -> None:
    cli_path = str(Path(sys.executable).parent / "ecsm-cli")
    proc = subprocess.Popen([cli_path, "top", "nodes", "--watch", "--interval", "0.5"],
                            env=processes.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    processes.children.append(proc)
    stdout = proc.stdout
    assert stdout is not None
    os.set_blocking(stdout.fileno(), False)
    seen = b""

    def two_blocks() -> bool:
        nonlocal seen
        seen += stdout.read() or b""
        return seen.count(b"NAME") >= 2

    try:
        wait_until(two_blocks, timeout=15, what="two blocks of top nodes --watch")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        stdout.close()
    text = seen.decode()
    assert "\x1b[" not in text  # no screen control codes in a pipe
    assert "\n\nNAME" in text  # blocks separated by a blank line


def test_top_watch_on_a_terminal_redraws_in_place(
        processes: Processes, loaded: dict[str, Any]) -> None:
    cli_path = str(Path(sys.executable).parent / "ecsm-cli")
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([cli_path, "top", "esvc", "--watch", "--interval", "0.5"],
                                env=processes.env(), stdout=slave, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        processes.children.append(proc)
        os.close(slave)
        slave = -1
        os.set_blocking(master, False)
        seen = b""

        def redrawn_twice() -> bool:
            nonlocal seen
            try:
                seen += os.read(master, 65536)
            except BlockingIOError:
                pass
            return seen.count(b"\x1b[H\x1b[2J") >= 2 and seen.endswith(b"\n")

        try:
            wait_until(redrawn_twice, timeout=15, what="two redraws of top esvc --watch")
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        last = seen.decode().rsplit("\x1b[H\x1b[2J", 1)[1]
        assert last.startswith("Every 0.5s") and "default" in last and "web" in last
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
