"""Two operator "hosts" on one etcd cluster and one ECSM simulator, as real processes.

Each :class:`Host` is a whole operator instance — supervisor, zygote, registry, service
and HPA controllers — in a run dir of its own, as on a computer of its own: its registry
is stateless over the etcd cluster (``store.backend = "etcd"``, no LMDB data dir), its
controllers campaign for leadership per controller kind. Host ``a`` also runs the ECSM
simulator (``--simulate``); host ``b`` finds it through ``ecsm.host`` / ``ecsm.port``,
read from ``a``'s address file, as a second computer is configured with the device's
ECSM address. Host ``b`` is started through ``ecsm-operator run --store etcd
--etcd-endpoints ...``, host ``a`` through the environment: both ways a host is
configured.

With ``simulator_apart`` the simulator runs on its own and both hosts are configured
with its address, so that either host can die while ECSM stays, as a device's platform.

Every supervisor runs in a process group of its own; :meth:`Host.kill` is a ``kill -9``
of that whole group (the host's computer gone), :meth:`Host.start` brings it back on its
run dir, :meth:`Topology.close` kills every group that is left and removes the run dirs.
Used by the two-host integration test, and by fault tests and benchmarks that kill
leader hosts.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.config import Config, load_config
from ecsm_actors.errors import ControlError
from ecsm_actors.registry.client import RegistryClient
from ecsm_actors.supervisor.client import SupervisorClient
from tests.helpers import Processes, wait_until

BIN = Path(sys.executable).parent
OPERATOR = str(BIN / "ecsm-operator")
CLI = str(BIN / "ecsm-cli")
CONTROLLERS = ("service-controller", "hpa-controller")

#: Quick timings for tests: short leases, heartbeats and ECSM polling.
FAST = {"ECSM_ACTORS_CONTROLLER_LEASE_DURATION": "2",
        "ECSM_ACTORS_CONTROLLER_RENEW_DEADLINE": "1.5",
        "ECSM_ACTORS_CONTROLLER_RETRY_PERIOD": "0.5",
        "ECSM_ACTORS_CONTROLLER_HEARTBEAT_INTERVAL": "0.5",
        "ECSM_ACTORS_CONTROLLER_BACKOFF_CAP": "0.5",
        "ECSM_ACTORS_SERVICE_DRIFT_INTERVAL": "1",
        "ECSM_ACTORS_SERVICE_POLL_INTERVAL": "0.1",
        "ECSM_ACTORS_SERVICE_NODE_REFRESH_INTERVAL": "0.2",
        "ECSM_ACTORS_SIMULATOR_START_DELAY": "0.1",
        "ECSM_ACTORS_STORE_ETCD_DIAL_TIMEOUT": "0.5",
        "ECSM_ACTORS_STORE_ETCD_REQUEST_TIMEOUT": "2"}


@dataclass
class Host:
    """One operator instance: its run dir, its environment, its supervisor process."""

    name: str
    run_dir: Path
    env: dict[str, str]
    processes: Processes
    #: How the supervisor is started: ``python -m ecsm_actors ARGS`` when ``module``,
    #: else the program and its arguments.
    command: tuple[str, ...] = ("supervisor",)
    module: bool = True
    supervisor: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (or start again, after :meth:`kill`) the host's supervisor; it is ready
        once :meth:`ready`."""
        self.supervisor = self.processes.spawn(*self.command, env=self.env,
                                               log_name="supervisor", module=self.module)

    @property
    def config(self) -> Config:
        return load_config(environ=self.processes.env(self.env))

    def control(self) -> SupervisorClient:
        return SupervisorClient(self.config, timeout=5)

    def registry(self) -> RegistryClient:
        return RegistryClient(self.config.registry_endpoint, timeout=5.0)

    def ready(self) -> bool:
        """Every child of the host RUNNING and ready (controllers synced)."""
        try:
            return bool(self.control().status()["ready"])
        except ControlError:
            return False

    def ps(self) -> list[dict[str, Any]]:
        """``ecsm-operator ps -o json`` of this host."""
        return json.loads(self.operator("ps", "-o", "json").stdout)

    def operator(self, *args: str, check: bool = True,
                 timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self._run(OPERATOR, args, None, check, timeout)

    def cli(self, *args: str, stdin: str | None = None, check: bool = True,
            timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """``ecsm-cli ARGS`` on this host (its registry; ECSM as the host sees it)."""
        return self._run(CLI, args, stdin, check, timeout)

    def in_process(self, main: Callable[[list[str]], int], *args: str,
                   monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                   stdin: str | None = None) -> tuple[int, str, str]:
        """``main(args)`` (``ecsm-cli``'s or ``ecsm-operator``'s entry point) in the test's
        process with this host's environment: ``(code, out, err)``. Saves an interpreter
        start per command."""
        for var in [v for v in os.environ if v.startswith("ECSM_ACTORS_")]:
            monkeypatch.delenv(var)
        for var, value in self.processes.env(self.env).items():
            if var.startswith("ECSM_ACTORS_"):
                monkeypatch.setenv(var, value)
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    def popen_cli(self, *args: str) -> subprocess.Popen[str]:
        """``ecsm-cli ARGS`` left running (``watch``), in a process group of its own,
        killed with the topology."""
        proc = subprocess.Popen([CLI, *args], env=self.processes.env(self.env), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        self.processes.children.append(proc)  # type: ignore[arg-type]
        return proc

    def _run(self, program: str, args: Sequence[str], stdin: str | None, check: bool,
             timeout: float) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([program, *args], env=self.processes.env(self.env), text=True,
                              input=stdin, capture_output=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{self.name}: {Path(program).name} {' '.join(args)} exited "
                                 f"{done.returncode}: {done.stderr.strip()}")
        return done

    def kill(self) -> None:
        """``kill -9`` of the host's whole process group: supervisor and children."""
        pids = [int(text) for p in self.config.pid_dir.glob("*.pid")
                if (text := p.read_text().strip()).isdigit()]
        if self.supervisor is not None:
            self.processes.kill(self.supervisor, signal.SIGKILL)
            self.supervisor.wait(timeout=10)
        for pid in pids:  # a child that left the group (none should): gone as well
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def logs(self) -> str:
        out = [self.processes.logs()]
        for path in sorted(self.config.log_dir.glob("*.log")):
            out.append(f"==== {self.name}/{path.name}\n"
                       f"{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)


@dataclass
class Topology:
    """Hosts ``a`` (with the ECSM simulator) and ``b`` on one etcd cluster."""

    endpoints: list[str]
    prefix: str
    hosts: dict[str, Host] = field(default_factory=dict)

    def simulator_url(self) -> str:
        """The ECSM simulator's base URL (its admin API under ``/_sim/``)."""
        where = self.hosts.get("ecsm") or self.a
        return str(json.loads(where.config.ecsm_address_file.read_text())["url"])

    @property
    def controllers(self) -> list[Host]:
        """The operator hosts (not the simulator's own run dir, when it runs apart)."""
        return [h for name, h in self.hosts.items() if name != "ecsm"]

    @property
    def a(self) -> Host:
        return self.hosts["a"]

    @property
    def b(self) -> Host:
        return self.hosts["b"]

    def leaders(self) -> dict[str, list[str]]:
        """Controller child name → the hosts whose ``ps`` says ``leader`` for it."""
        out: dict[str, list[str]] = {name: [] for name in CONTROLLERS}
        for host in self.controllers:
            if host.supervisor is None or host.supervisor.poll() is not None:
                continue
            for row in host.ps():
                if row["name"] in out and row.get("role") == "leader":
                    out[row["name"]].append(host.name)
        return out

    def wait_ready(self, timeout: float) -> None:
        """Wait until every child of every operator host is ready."""
        for host in self.controllers:
            wait_until(host.ready, timeout=timeout, interval=0.1,
                       what=f"every child of host {host.name} ready")

    @contextlib.contextmanager
    def closed_on_failure(self) -> Iterator[Topology]:
        """Around starting the hosts: if that fails, print their logs and close them."""
        try:
            yield self
        except BaseException:
            print(self.logs())
            self.close()
            raise

    def close(self) -> None:
        for host in self.hosts.values():
            host.processes.cleanup()
        for host in self.hosts.values():
            shutil.rmtree(host.run_dir, ignore_errors=True)

    def logs(self) -> str:
        return "\n".join(h.logs() for h in self.hosts.values())


def _run_dir(name: str) -> Path:
    # Short: ipc:// paths are limited to ~107 bytes.
    path = Path(tempfile.mkdtemp(prefix=f"ea-{name}-", dir="/tmp"))
    path.chmod(0o700)
    return path


def start_topology(endpoints: Sequence[str], prefix: str, *, timeout: float = 60,
                   simulator_apart: bool = False, **env: str) -> Topology:
    """Host ``a`` (simulator, registry, controllers), then host ``b`` pointed at ``a``'s
    simulator; return once every child of both is ready. ``simulator_apart``: the
    simulator runs on its own instead (in the topology's ``ecsm`` run dir), both hosts
    pointed at it, so that either host can be killed as a whole while ECSM stays (the
    leader-host kills). ``env``: extra settings of both hosts (on top of :data:`FAST`)."""
    topology = Topology(endpoints=list(endpoints), prefix=prefix)
    store = {"ECSM_ACTORS_STORE_ETCD_PREFIX": prefix, **FAST, **env}
    by_env = {"ECSM_ACTORS_STORE_BACKEND": "etcd",
              "ECSM_ACTORS_STORE_ETCD_ENDPOINTS": ",".join(endpoints)}
    with topology.closed_on_failure():
        if simulator_apart:
            ecsm = _host(topology, "ecsm", store)
            ecsm.processes.spawn("simulator", env=store, log_name="simulator")
        else:
            ecsm = _host(topology, "a", {**store, **by_env}, "--simulate")
            ecsm.start()
        address = wait_until(lambda: json.loads(ecsm.config.ecsm_address_file.read_text()),
                             timeout=timeout, what="the simulator's address")
        at = {"ECSM_ACTORS_ECSM_HOST": str(address["host"]),
              "ECSM_ACTORS_ECSM_PORT": str(address["port"])}
        if simulator_apart:
            _host(topology, "a", {**store, **by_env, **at}).start()
        b = _host(topology, "b", {**store, **at}, OPERATOR, "run", "--store", "etcd",
                  "--etcd-endpoints", ",".join(endpoints), module=False)
        b.start()
        topology.wait_ready(timeout)
    return topology


def _host(topology: Topology, name: str, env: dict[str, str], *args: str,
          module: bool = True) -> Host:
    run_dir = _run_dir(name)
    host = Host(name=name, run_dir=run_dir, env=env, processes=Processes(run_dir),
                command=args if not module else ("supervisor", *args), module=module)
    topology.hosts[name] = host
    return host
