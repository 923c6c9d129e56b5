"""What the supervisor leaves on disk while it runs: a private run directory (0700, with
its logs/ and pids/), private sockets (0600: its own and the registry's), and child logs
kept under their limit."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.config import load_config
from ecsm_actors.supervisor.client import SupervisorClient
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(60)

WORKER = str(Path(__file__).resolve().parents[1] / "fault" / "children" / "worker.py")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def start_supervisor(processes: Processes, run_dir: Path, table: list[dict[str, Any]],
                     env: dict[str, str] | None = None) -> SupervisorClient:
    """A supervisor on ``run_dir`` (which it creates when missing) under umask 0, so that
    whatever is not explicitly private would be open to everyone."""
    children = processes.run_dir / "children.json"
    children.write_text(json.dumps(table))
    old = os.umask(0)
    try:
        processes.spawn("supervisor", "--children", str(children), log_name="supervisor",
                        env={"ECSM_ACTORS_RUN_DIR": str(run_dir), **(env or {})})
    finally:
        os.umask(old)
    client = SupervisorClient(load_config(environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)}))
    wait_until(lambda: client.status()["ready"], timeout=15, what="every child ready")
    return client


@pytest.mark.parametrize("existing", [False, True], ids=["fresh", "existing-0777"])
def test_the_run_dir_is_0700_and_every_socket_of_the_supervisor_0600(
        processes: Processes, existing: bool) -> None:
    run_dir = processes.run_dir / "state" / "ecsm"
    if existing:
        for sub in ("", "logs", "pids"):
            (run_dir / sub).mkdir(parents=True, exist_ok=True)
            (run_dir / sub).chmod(0o777)
    client = start_supervisor(processes, run_dir, [
        {"name": "registry", "argv": [sys.executable, "-m", "ecsm_actors", "registry"]}])
    assert {p: oct(mode(run_dir / p)) for p in ("", "logs", "pids")} == {
        "": "0o700", "logs": "0o700", "pids": "0o700"}

    def sockets() -> dict[str, str]:
        return {p.name: oct(mode(p)) for p in run_dir.iterdir() if p.is_socket()}

    wait_until(lambda: len(sockets()) == 6, timeout=15, what="the registry's sockets")
    assert sockets() == {"control.sock": "0o600", "heartbeat.sock": "0o600",
                         "registry.sock": "0o600", "events.sock": "0o600",
                         "registry.stream": "0o600", "events.stream": "0o600"}
    assert client.ps()[0]["state"] == "RUNNING"


def test_a_running_childs_log_is_rotated_once_past_the_configured_limit(
        processes: Processes, run_dir: Path) -> None:
    # About 250 KB/s: the 64 KiB limit is passed about four times a second.
    chatty = [sys.executable, "-u", "-c",
              "import time\nwhile True:\n    print('x' * 499, flush=True)\n    time.sleep(0.002)"]
    client = start_supervisor(processes, run_dir, [{"name": "chatty", "argv": chatty,
                                                        "heartbeat_deadline": 0}],
                              env={"ECSM_ACTORS_SUPERVISOR_LOG_MAX_BYTES": "64Ki",
                                   "ECSM_ACTORS_SUPERVISOR_MEMORY_INTERVAL": "0.1"})
    log = run_dir / "logs" / "chatty.log"
    rotated = log.with_name("chatty.log.1")
    wait_until(rotated.exists, timeout=15, what="chatty.log rotated to chatty.log.1")
    assert rotated.stat().st_size > 64 << 10
    assert client.ps()[0]["restarts"] == 0  # rotated while it runs, not at a restart
    # The child keeps writing at the start of the truncated file: it stays near the limit.
    wait_until(lambda: log.stat().st_size > 0, timeout=5, what="the child writing again")
    copies = {rotated.stat().st_mtime_ns}
    sizes = [log.stat().st_size]

    def rotated_three_more_times() -> bool:
        copies.add(rotated.stat().st_mtime_ns)
        sizes.append(log.stat().st_size)
        return len(copies) >= 4

    wait_until(rotated_three_more_times, timeout=20, what="three more rotations")
    assert log.stat().st_size < 4 * (64 << 10)
    # Each rotation truncated the file the child writes to (a copy alone would not).
    assert any(b < a for a, b in zip(sizes, sizes[1:], strict=False)), sizes[-20:]
