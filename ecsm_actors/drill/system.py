"""The system under drill: a whole ecsm-operator instance in a temporary run directory.

Runs in the drill process. :class:`DrillSystem` writes a drill-tuned conf file, starts
``python -m ecsm_actors supervisor --simulate`` in its own session (so its process group
is the drill's handle on everything it spawns), waits until every child is RUNNING,
answers ``ps`` through the supervisor's control socket, remembers every process it ever
saw (pid + create time, so pid reuse is told apart), and stops the instance gracefully,
reporting whatever survived the stop before killing it.

Drill tuning (documented in the conf file it writes): short drift, sync and watchdog
periods so that a one-minute drill sees every fault heal; a small PUB high-water mark so a
write burst really overflows a paused subscriber; a fixed simulator port and a state file
so the simulator can be killed and come back as the same ECSM, like a real one.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from ecsm_actors.config import Config, load_config
from ecsm_actors.drill.snapshot import ProcessRecord
from ecsm_actors.errors import ControlError, EcsmActorsError

logger = logging.getLogger(__name__)

CHILD_NAMES = ("simulator", "registry", "service-controller", "hpa-controller")

_CONF = """\
# Written by `ecsm-operator drill`: an instance tuned to heal fast enough to be drilled.
[run]
dir = "{run_dir}"

[log]
level = "INFO"

[registry]
# Small: a burst of writes to a paused subscriber overflows it (gap -> replay/relist).
pub_hwm = 500
request_timeout = 2.0

[controller]
backoff_cap = 2.0
watch_deadline = 3.0
heartbeat_interval = 0.5

[service]
drift_interval = 2.0
unavailable_threshold = 3

[hpa]
sync_period = 2.0
downscale_stabilization = 3.0
metric_max_age = 10.0

[supervisor]
startsecs = 0.5
backoff_base = 0.1
backoff_cap = 2.0
# The drill kills children on purpose, often: never hold one down for long.
flap_restarts = 50
flap_window = 60.0
hold_down = 3.0
heartbeat_deadline = 5.0
stop_grace = 5.0

[simulator]
port = {port}
nodes = 3
start_delay = 0.2
# Memory of each node for containers: sized below the workload's needs under capacity
# pressure, far above them otherwise (nothing is refused).
node_memory = {node_memory}
state_file = "{run_dir}/ecsm-simulator-state.json"
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Node memory of a drill without capacity pressure: nothing is ever refused.
NO_PRESSURE_NODE_MEMORY = 1 << 40


def write_conf(run_dir: Path, port: int, node_memory: int = NO_PRESSURE_NODE_MEMORY,
               extra: str = "") -> Path:
    """The drill's conf file; ``extra``: more TOML tables appended (``--store etcd``)."""
    path = run_dir / "drill.toml"
    text = _CONF.format(run_dir=run_dir, port=port, node_memory=int(node_memory))
    path.write_text(text + ("\n" + extra if extra else ""))
    return path


class DrillSystem:
    """One supervisor (and its children) started and stopped by the drill.

    ``simulate=False`` (the second host of ``--store etcd``): no simulator child, ECSM
    is the one ``extra_conf`` names; ``extra_conf``: TOML tables appended to the conf
    file; ``extra_env``: settings given through the environment."""

    def __init__(self, run_dir: Path, *, node_memory: int = NO_PRESSURE_NODE_MEMORY,
                 simulate: bool = True, extra_conf: str = "", port: int | None = None,
                 extra_env: dict[str, str] | None = None) -> None:
        self.run_dir = run_dir
        self.simulate = simulate
        self.extra_env = dict(extra_env or {})
        self.children = CHILD_NAMES if simulate else CHILD_NAMES[1:]
        run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(run_dir, 0o700)
        self.port = port or free_port()
        self.conf_path = write_conf(run_dir, self.port, node_memory, extra_conf)
        self.cfg: Config = load_config(self.conf_path, environ={})
        self.cfg.ensure_run_dir()
        self.proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.records: dict[int, ProcessRecord] = {}
        self._control: Any = None

    # -- start -----------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
        env["ECSM_ACTORS_RUN_DIR"] = str(self.run_dir)
        env["ECSM_ACTORS_CONF"] = str(self.conf_path)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> None:
        from ecsm_actors.supervisor.client import SupervisorClient

        log = open(self.cfg.log_dir / "drill-supervisor.out", "ab")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ecsm_actors", "supervisor",
                 *(["--simulate"] if self.simulate else []), "--conf", str(self.conf_path)],
                env=self.env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        finally:
            log.close()
        self._remember(self.proc.pid, "supervisor")
        self._control = SupervisorClient(self.cfg, timeout=3.0)
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EcsmActorsError(f"the supervisor exited with {self.proc.returncode} "
                                      f"during start; see {self.cfg.log_dir}")
            try:
                rows = self.ps()
                states = {r.get("name"): str(r.get("state", "")).upper() for r in rows}
                if all(states.get(n) == "RUNNING" for n in self.children):
                    return
                last = ", ".join(f"{n}={s}" for n, s in sorted(states.items()))
            except ControlError as e:
                last = str(e)
            time.sleep(0.1)
        raise EcsmActorsError(f"the system did not start within {timeout:g}s ({last}); "
                              f"see {self.cfg.log_dir}")

    # -- observe ---------------------------------------------------------------------

    def ps(self) -> list[dict[str, Any]]:
        """The supervisor's child table; every pid seen is remembered. Raises ControlError."""
        rows = self._control.ps()
        for row in rows:
            pid = row.get("pid")
            if isinstance(pid, int) and pid > 0:
                self._remember(pid, str(row.get("name", "")))
        return rows

    def child(self, name: str) -> dict[str, Any] | None:
        for row in self.ps():
            if row.get("name") == name:
                return row
        return None

    def _remember(self, pid: int, name: str) -> None:
        with self._lock:
            if pid in self.records:
                return
        try:
            ctime = psutil.Process(pid).create_time()
        except psutil.Error:
            return
        with self._lock:
            self.records[pid] = ProcessRecord(pid=pid, create_time=ctime, name=name)

    def same_process(self, record: ProcessRecord) -> bool:
        try:
            return abs(psutil.Process(record.pid).create_time() - record.create_time) < 0.01
        except psutil.Error:
            return False

    def record_of(self, pid: int) -> ProcessRecord | None:
        with self._lock:
            return self.records.get(pid)

    # -- stop ------------------------------------------------------------------------

    def survivors(self) -> dict[int, float]:
        """pid → create time of every recorded process still alive, and of anything still
        in the supervisor's process group."""
        out: dict[int, float] = {}
        with self._lock:
            records = list(self.records.values())
        for r in records:
            if self.same_process(r):
                out[r.pid] = r.create_time
        if self.proc is not None:
            group = self.proc.pid
            for p in psutil.process_iter(["pid", "create_time"]):
                try:
                    if p.pid != os.getpid() and os.getpgid(p.pid) == group:
                        out[p.pid] = p.info["create_time"]
                except (ProcessLookupError, psutil.Error, OSError):
                    continue
        return out

    def stop(self, timeout: float = 30.0) -> dict[int, float]:
        """Stop gracefully (SIGTERM to the supervisor: children stop in reverse order),
        wait, then return the processes that survived the stop (empty = clean)."""
        if self.proc is None:
            return {}
        try:
            self.ps()                        # remember the final children too
        except ControlError:
            pass
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("supervisor still running %gs after SIGTERM", timeout)
        deadline = time.monotonic() + 5.0
        left = self.survivors()
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = self.survivors()
        return left

    def kill_host(self) -> None:
        """``kill -9`` of the whole instance (its computer gone): the supervisor's process
        group and every recorded process still alive; reaped."""
        self.kill_everything()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill_everything(self) -> None:
        """Last resort after a failed stop: SIGKILL the group and every recorded survivor."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        with self._lock:
            records = list(self.records.values())
        for r in records:
            if self.same_process(r):
                try:
                    os.kill(r.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
