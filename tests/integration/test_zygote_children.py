"""Children forked from the zygote start as clean as fresh interpreters: their own random
state, no inherited fd but 0/1/2, no blocked signal, default handlers, the environment and
argv they were given — and they are the supervisor's own children. So does a restart the
zygote's spare takes (a child forked in advance, waiting for an order)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from ecsm_actors.config import load_config
from ecsm_actors.lifecycle import PARENT_PID_ENV
from ecsm_actors.supervisor.client import SupervisorClient
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(60)

PROBE = str(Path(__file__).resolve().parents[1] / "fault" / "children" / "forked_probe.py")


def probe(name: str) -> dict[str, Any]:
    return {"name": name, "argv": [sys.executable, PROBE, "--as", name],
            "depends_on": ["zygote"], "env": {"PROBE_NAME": name}, "heartbeat_deadline": 0}


def described(run_dir: Path, name: str) -> dict[str, Any]:
    lines = (run_dir / "logs" / f"{name}.log").read_text().splitlines()
    docs = [json.loads(line) for line in lines if line.startswith("{")]
    return docs[-1] if docs else {}


def spare_of(zygote: int) -> int | None:
    """The zygote's spare: the one child of its one child (the intermediate process)."""
    intermediates = psutil.Process(zygote).children()
    spares = [c for i in intermediates for c in i.children()]
    return spares[0].pid if len(intermediates) == 1 and len(spares) == 1 else None


def test_two_forked_children_share_no_random_state_no_fd_and_no_signal_state(
        processes: Processes, run_dir: Path) -> None:
    table = processes.run_dir / "children.json"
    table.write_text(json.dumps([
        {"name": "zygote", "argv": [sys.executable, "-m", "ecsm_actors", "zygote"],
         "readiness": "zygote", "heartbeat_deadline": 0},
        probe("a"), probe("b"),
    ]))
    supervisor = processes.spawn("supervisor", "--children", str(table), log_name="supervisor")
    client = SupervisorClient(load_config(environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)}))
    wait_until(lambda: client.status()["ready"], timeout=20, what="every child ready")
    a, b = (wait_until(lambda n=n: described(run_dir, n), timeout=10, what=f"{n} described")
            for n in ("a", "b"))
    pids = {r["name"]: r["pid"] for r in client.ps()}
    assert (a["pid"], b["pid"]) == (pids["a"], pids["b"])
    spare = wait_until(lambda: spare_of(pids["zygote"]), timeout=10, what="the zygote's spare")
    waiter = psutil.Process(spare).parent()  # the intermediate, waiting as a shell
    assert os.path.realpath(waiter.exe()) == os.path.realpath("/bin/sh")
    os.kill(b["pid"], signal.SIGKILL)  # its restart takes the spare forked in advance
    c = wait_until(lambda: (doc := described(run_dir, "b"))["pid"] != b["pid"] and doc,
                   timeout=10, what="b restarted and described")
    assert c["pid"] == spare == {r["name"]: r["pid"] for r in client.ps()}["b"]
    log = (processes.run_dir / "test-logs" / "supervisor.0.log").read_text()
    for name, doc in (("a", a), ("b", b), ("b", c)):
        assert f"{name}: started pid {doc['pid']} (forked by the zygote)" in log
        assert doc["ppid"] == supervisor.pid  # adopted: reaped by the supervisor itself
        assert doc["fds"] == [0, 1, 2]
        assert doc["blocked"] == []
        assert doc["sigint"] == "default_int_handler"  # the zygote itself ignores SIGINT
        assert doc["sigterm"] == str(signal.SIG_DFL)
        assert doc["argv"] == [PROBE, "--as", name] and doc["name"] == "__main__"
        assert doc["probe"] == name
    assert len({a["random"], b["random"], c["random"]}) == 3


def test_the_first_zygote_is_forked_from_the_supervisor_and_says_zygote_in_proc(
        processes: Processes, run_dir: Path) -> None:
    """The supervisor imports the zygote's modules and forks it (one image shared by all);
    ``ps`` and the orphan check still see a zygote of this supervisor."""
    table = processes.run_dir / "children.json"
    table.write_text(json.dumps([
        {"name": "zygote", "argv": [sys.executable, "-m", "ecsm_actors", "zygote", "json"],
         "readiness": "zygote", "heartbeat_deadline": 0}]))
    supervisor = processes.spawn("supervisor", "--children", str(table), log_name="supervisor")
    client = SupervisorClient(load_config(environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)}))
    wait_until(lambda: client.status()["ready"], timeout=20, what="the zygote ready")
    pid = client.ps()[0]["pid"]
    log = (processes.run_dir / "test-logs" / "supervisor.0.log").read_text()
    assert f"zygote: started pid {pid} (forked from the supervisor)" in log
    zygote = psutil.Process(pid)
    assert zygote.ppid() == supervisor.pid
    assert zygote.cmdline()[1:4] == ["-m", "ecsm_actors", "zygote"]
    environ = zygote.environ()
    assert environ[PARENT_PID_ENV] == str(supervisor.pid)
    assert os.path.realpath(environ["ECSM_ACTORS_RUN_DIR"]) == os.path.realpath(run_dir)
