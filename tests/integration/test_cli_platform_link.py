"""ecsm-cli's platform verbs against a real simulator over a bad link: reads get through
connections dropped half of the time; a container action whose answer is lost is not
sent again and says how to check what happened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.cli.ecsm_cli import main
from tests.ecsm_sim import RunningSimulator, running_simulator
from tests.helpers import wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator("--nodes", "2", "--start-delay", "0") as s:
        cs = s.clientset()
        cs.services.create({"name": "web", "image": {"ref": "web@1.0#sylixos",
                                                     "action": "run", "config": None},
                            "node": {"names": ["node-1"]}, "factor": 1, "policy": "dynamic"})
        wait_until(lambda: all(r.instance_online == r.factor for r in cs.services.list_all()),
                   5, what="services online")
        cs.close()
        yield s


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sim: RunningSimulator
             ) -> Iterator[None]:
    for var in ("ECSMCLI_HOST", "ECSMCLI_PORT", "ECSMCLI_PROTOCOL", "ECSM_ACTORS_ECSM_HOST",
                "ECSM_ACTORS_ECSM_PORT", "ECSM_ACTORS_CONF"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    yield
    sim.admin.reset_faults()


def run(sim: RunningSimulator, capsys: pytest.CaptureFixture[str], *args: str
        ) -> tuple[int, str, str]:
    code = main(["--run-dir", str(sim.run_dir), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_reads_get_through_a_link_that_drops_half_of_the_connections(
        sim: RunningSimulator, capsys: Any) -> None:
    sim.admin.faults(drop_rate=0.5)
    for _ in range(4):
        code, out, err = run(sim, capsys, "--request-timeout", "60", "get", "nodes")
        assert (code, err) == (0, "")
        assert [line.split()[0] for line in out.splitlines()] == ["NAME", "node-1", "node-2"]


def test_a_container_action_whose_answer_is_lost_is_sent_once_and_names_the_check(
        sim: RunningSimulator, capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cs = sim.clientset()
    name = cs.containers.list_all_by_service([cs.services.list_all()[0].id])[0].name
    sim.admin.faults(latency=1.0)
    monkeypatch.setenv("ECSM_ACTORS_ECSM_READ_TIMEOUT", "0.3")
    code, out, err = run(sim, capsys, "container", "stop", name)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"error: ECSM unreachable at {sim.url}/api/v1/container: timeout (read timed out); "
        f"the stop of container {name} was sent but its outcome is unknown: check with "
        f"ecsm-cli get containers --key {name}"]
    sim.admin.reset_faults()
    cs.close()
    monkeypatch.delenv("ECSM_ACTORS_ECSM_READ_TIMEOUT")

    def status() -> str:  # the check named: STATUS of the one container listed
        code, out, _ = run(sim, capsys, "get", "containers", "--key", name)
        rows = [line.split() for line in out.splitlines()[1:]]
        return rows[0][1] if code == 0 and len(rows) == 1 else ""

    assert wait_until(lambda: status() not in ("", "running"), 10, what="the stop shown")
