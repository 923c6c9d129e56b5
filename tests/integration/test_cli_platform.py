"""ecsm-cli's platform verbs against a real simulator: get/describe output, paging and
output formats, name-or-id filters, container actions, connection options and errors."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecsm_actors.cli.ecsm_cli import main
from tests.ecsm_sim import RunningSimulator, running_simulator
from tests.helpers import wait_until


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator("--nodes", "3", "--start-delay", "0") as s:
        cs = s.clientset()
        for name, nodes, factor in (("web", ["node-1", "node-2"], 3), ("db", ["node-3"], 1)):
            cs.services.create({"name": name, "image": {"ref": f"{name}@1.0#sylixos",
                                                        "action": "run", "config": None},
                                "node": {"names": nodes}, "factor": factor,
                                "policy": "dynamic"})
        wait_until(lambda: all(r.instance_online == r.factor for r in cs.services.list_all()),
                   5, what="services online")
        cs.close()
        yield s


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ECSMCLI_* variables, no .ecsm-cli.yaml from the developer's cwd or home."""
    for var in ("ECSMCLI_HOST", "ECSMCLI_PORT", "ECSMCLI_PROTOCOL", "ECSM_ACTORS_ECSM_HOST",
                "ECSM_ACTORS_ECSM_PORT", "ECSM_ACTORS_CONF"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))


def run(sim: RunningSimulator, capsys: pytest.CaptureFixture[str], *args: str
        ) -> tuple[int, str, str]:
    code = main(["--run-dir", str(sim.run_dir), *args])
    out, err = capsys.readouterr()
    return code, out, err


def table(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


def test_get_nodes_prints_the_go_columns(sim: RunningSimulator, capsys: Any) -> None:
    code, out, _ = run(sim, capsys, "get", "nodes")
    rows = table(out)
    assert code == 0
    assert rows[0] == ["NAME", "STATUS", "ADDRESS", "TYPE", "ARCH", "CONTAINERS", "CREATED",
                       "UPTIME", "ID"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["node-1"][1] == "online" and by_name["node-1"][2] == "10.0.0.1:5050"
    assert by_name["node-3"][5] == "1/1"
    assert rows[1][8].startswith("0d0h")


def test_get_services_shows_online_and_desired(sim: RunningSimulator, capsys: Any) -> None:
    _, out, _ = run(sim, capsys, "get", "services")
    rows = table(out)
    assert rows[0] == ["NAME", "DEPLOY_STATUS", "POLICY", "ONLINE", "DESIRED", "IMAGE", "ID"]
    web = next(r for r in rows if r[0] == "web")
    assert web[1:6] == ["complete", "dynamic", "3", "3", "web:1.0"]
    _, out, _ = run(sim, capsys, "get", "svc", "-o", "wide", "-n", "we")
    assert table(out)[0][-1] == "NODES" and table(out)[1][-1] == "node-1,node-2"
    _, out, _ = run(sim, capsys, "get", "services", "-n", "nothing-like-this")
    assert out.strip() == "No services found."


def test_get_containers_accepts_a_service_or_node_by_name_or_id(sim: RunningSimulator,
                                                                capsys: Any) -> None:
    cs = sim.clientset()
    web = cs.services.list_all(name="web")[0]
    node3 = cs.nodes.get_by_name("node-3")
    cs.close()
    _, by_name, _ = run(sim, capsys, "get", "containers", "-s", "web")
    _, by_id, _ = run(sim, capsys, "get", "co", "--service", web.id)
    assert by_name == by_id
    rows = table(by_name)
    assert rows[0] == ["NAME", "STATUS", "RESTARTS", "IMAGE", "SERVICE", "NODE"]
    assert len(rows) == 4 and {r[4] for r in rows[1:]} == {"web"}
    _, on_node, _ = run(sim, capsys, "get", "containers", "--node", node3.id)
    assert [r[4] for r in table(on_node)[1:]] == ["db"]
    _, every, _ = run(sim, capsys, "get", "containers")
    assert len(table(every)) == 5
    code, _, err = run(sim, capsys, "get", "containers", "-s", "nope")
    assert code == 1 and err.strip().splitlines() == ["Error: service 'nope' not found"]


def test_paging_flags_are_the_same_everywhere(sim: RunningSimulator, capsys: Any) -> None:
    _, every, _ = run(sim, capsys, "get", "images", "--page-size", "2")
    assert len(table(every)) - 1 >= 7
    _, page2, _ = run(sim, capsys, "get", "img", "--no-all", "--page", "2", "--page-size", "3")
    assert table(page2)[1:] == table(every)[4:7]
    _, page1, _ = run(sim, capsys, "get", "nodes", "--page", "1", "--page-size", "2")
    assert len(table(page1)) == 3
    _, first, _ = run(sim, capsys, "get", "containers", "-A", "--page-size", "1")
    assert len(table(first)) == 5


def test_json_and_yaml_print_the_wire_objects(sim: RunningSimulator, capsys: Any) -> None:
    _, out, _ = run(sim, capsys, "get", "services", "-o", "json")
    docs = json.loads(out)
    assert {d["name"] for d in docs} == {"web", "db"} and "instanceOnline" in docs[0]
    _, out, _ = run(sim, capsys, "get", "nodes", "-o", "yaml")
    assert [d["name"] for d in yaml.safe_load(out)] == ["node-1", "node-2", "node-3"]
    _, out, _ = run(sim, capsys, "get", "containers", "-o", "wide")
    assert table(out)[0][-3:] == ["CPU(%)", "MEMORY(MIB)", "ID"]


def test_describe_node_shows_metrics_and_containers(sim: RunningSimulator,
                                                    capsys: Any) -> None:
    code, out, _ = run(sim, capsys, "describe", "node", "node-3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Name:         node-3"
    assert "  Containers:   1 running / 0 stopped" in lines
    assert "Containers on this node (1):" in lines
    assert lines[-1].split()[-1] == "db"


def test_describe_service_shows_deployment_nodes_and_containers(sim: RunningSimulator,
                                                                capsys: Any) -> None:
    _, out, _ = run(sim, capsys, "describe", "svc", "web")
    assert "Name:           web" in out.splitlines()
    assert "  Replicas:     3 desired, 3 online, 3 active" in out.splitlines()
    assert "  Reference:    web@1.0#sylixos" in out.splitlines()
    assert "Nodes (2):" in out and "Containers (3):" in out


def test_a_container_action_shows_in_describe_container(sim: RunningSimulator,
                                                        capsys: Any) -> None:
    code, out, _ = run(sim, capsys, "container", "restart", "db-4")
    assert code == 0 and "restart submitted" in out
    _, out, _ = run(sim, capsys, "describe", "container", "db-4")
    lines = out.splitlines()
    assert lines[0] == "Name:           db-4"
    assert "Controlled By:  Service/db" in lines and "  Restarts:     1" in lines
    assert "History (1):" in lines and lines[-1].split()[-2:] == ["restart", "admin"]
    code, _, err = run(sim, capsys, "container", "stop", "nope")
    assert code == 1 and len(err.strip().splitlines()) == 1


def test_describe_image_shows_the_configuration(sim: RunningSimulator, capsys: Any) -> None:
    _, out, _ = run(sim, capsys, "describe", "image", "db@1.0#sylixos")
    assert out.splitlines()[0] == "Name:         db"
    assert "      Memory Limit: 1024 MB" in out.splitlines()
    code, _, err = run(sim, capsys, "describe", "image", "no-tag")
    assert code == 2 and "expected format name@tag[#os]" in err


def test_describe_of_an_unknown_name_fails_once(sim: RunningSimulator, capsys: Any) -> None:
    code, out, err = run(sim, capsys, "describe", "node", "nope")
    assert (code, out) == (1, "") and err.strip() == "Error: node 'nope' not found"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_ecsm_prints_one_line_naming_the_url(sim: RunningSimulator,
                                                            capsys: Any) -> None:
    port = _closed_port()
    code, out, err = run(sim, capsys, "get", "nodes", "--port", str(port))
    assert (code, out) == (1, "")
    assert err.strip().splitlines() == [
        f"error: ECSM unreachable at http://127.0.0.1:{port}/api/v1/node?pageNum=1"
        "&pageSize=100: connection refused"]


def test_flags_beat_env_which_beats_the_yaml_file(sim: RunningSimulator, capsys: Any,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    env_port, file_port = _closed_port(), _closed_port()
    (tmp_path / ".ecsm-cli.yaml").write_text(f"host: 127.0.0.1\nport: '{file_port}'\n")
    _, _, err = run(sim, capsys, "get", "nodes")
    assert f":{file_port}/" in err
    monkeypatch.setenv("ECSMCLI_PORT", str(env_port))
    _, _, err = run(sim, capsys, "get", "nodes")
    assert f":{env_port}/" in err
    code, out, _ = run(sim, capsys, "get", "nodes", "--port", str(sim.port))
    assert code == 0 and "node-1" in out
