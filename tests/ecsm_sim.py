"""Test helpers for the ECSM simulator: a real simulator process, or one in-process.

* :func:`running_simulator` starts ``python -m ecsm_actors simulator`` in its own short
  run dir (for module-scoped fixtures) and kills its process group afterwards.
* :class:`InProcessTransport` plugs a :class:`~ecsm_actors.ecsm.simulator.app.Simulator`
  straight into the client's rest layer (no sockets), for unit tests.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen
from typing import Any
from urllib.parse import urlsplit

from ecsm_actors.ecsm.clientset import Clientset
from ecsm_actors.ecsm.rest import RestClient
from ecsm_actors.ecsm.simulator.admin import SimulatorAdmin
from ecsm_actors.ecsm.simulator.app import Simulator
from ecsm_actors.errors import EcsmUnavailable
from tests.helpers import Processes, wait_until


@dataclass
class RunningSimulator:
    procs: Processes
    proc: Popen[bytes]
    run_dir: Path
    url: str
    port: int
    admin: SimulatorAdmin

    def clientset(self, *, read_timeout: float = 5.0) -> Clientset:
        return Clientset.from_url(self.url, connect_timeout=2.0, read_timeout=read_timeout)


def start_simulator(procs: Processes, *args: str, timeout: float = 15.0,
                    env: dict[str, str] | None = None) -> RunningSimulator:
    """Spawn a simulator in ``procs.run_dir`` (``env`` added to its environment) and wait
    for its address file."""
    proc = procs.spawn("simulator", *args, env=env)
    address = procs.run_dir / "ecsm-simulator.json"

    def ready() -> dict[str, Any] | None:
        if proc.poll() is not None:
            raise AssertionError(f"simulator exited with {proc.returncode}:\n{procs.logs()}")
        doc = json.loads(address.read_text())
        return doc if doc.get("pid") == proc.pid else None

    doc = wait_until(ready, timeout, what="the simulator address file")
    assert doc is not None  # wait_until returns only a truthy value
    return RunningSimulator(procs=procs, proc=proc, run_dir=procs.run_dir, url=doc["url"],
                            port=int(doc["port"]), admin=SimulatorAdmin(doc["url"]))


@contextmanager
def running_simulator(*args: str) -> Iterator[RunningSimulator]:
    """A simulator in a fresh short run dir, killed (by process group) on exit."""
    run_dir = Path(tempfile.mkdtemp(prefix="ea-sim-", dir="/tmp"))
    run_dir.chmod(0o700)
    procs = Processes(run_dir)
    try:
        yield start_simulator(procs, *args)
    finally:
        procs.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


class InProcessTransport:
    """The client's Transport, answered by an in-process Simulator (no sockets)."""

    def __init__(self, app: Simulator) -> None:
        self.app = app
        self.sent: list[tuple[str, str, bytes | None]] = []

    def send(self, method: str, url: str, body: bytes | None,
             timeout: tuple[float | None, float | None]) -> tuple[int, bytes]:
        self.sent.append((method, url, body))
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        reply = self.app.handle(method, target, body or b"")
        if reply is None:
            raise EcsmUnavailable(url, "connection closed without response")
        return reply

    def close(self) -> None:
        pass


def in_process_clientset(app: Simulator) -> tuple[Clientset, InProcessTransport]:
    transport = InProcessTransport(app)
    return Clientset(RestClient("http://sim.invalid:3001", transport=transport)), transport
