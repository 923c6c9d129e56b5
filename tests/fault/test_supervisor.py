"""The supervisor heals its children: kill -9, SIGSTOP, crash loops, memory, orphans.

Real processes: ``python -m ecsm_actors supervisor --children TABLE`` over small test
programs (tests/fault/children/worker.py) that crash, hang, hog memory or report
liveness, with deadlines shortened through the environment so that each drill takes a
second or two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from ecsm_actors.config import load_config
from ecsm_actors.errors import ControlError
from ecsm_actors.supervisor.client import SupervisorClient
from tests.helpers import Processes, wait_until

WORKER = str(Path(__file__).parent / "children" / "worker.py")
OPERATOR = str(Path(sys.executable).parent / "ecsm-operator")

FAST = {
    "ECSM_ACTORS_SUPERVISOR_HEARTBEAT_DEADLINE": "1.0",
    "ECSM_ACTORS_SUPERVISOR_BACKOFF_BASE": "0.05",
    "ECSM_ACTORS_SUPERVISOR_STARTSECS": "0.3",
    "ECSM_ACTORS_SUPERVISOR_STOP_GRACE": "1.0",
    "ECSM_ACTORS_SUPERVISOR_READY_TIMEOUT": "10",
}


def worker(name: str, *args: str, **spec: Any) -> dict[str, Any]:
    """A child table entry running the test worker."""
    return {"name": name, "argv": [sys.executable, WORKER, "--name", name, *args], **spec}


def beating(name: str, *args: str, **spec: Any) -> dict[str, Any]:
    """A worker that reports liveness every 0.1 s and is ready on its first report."""
    return worker(name, "--beat", "0.1", *args,
                  readiness={"kind": "liveness", "stat": "synced"}, **spec)


class Daemon:
    """One supervisor over a child table, and a client to it."""

    def __init__(self, processes: Processes, table: list[dict[str, Any]],
                 env: dict[str, str] | None = None) -> None:
        self.processes = processes
        self.run_dir = processes.run_dir
        self.table = self.run_dir / "children.json"
        self.table.write_text(json.dumps(table))
        self.env = {**FAST, **(env or {})}
        self.client = SupervisorClient(
            load_config(environ={"ECSM_ACTORS_RUN_DIR": str(self.run_dir)}), timeout=5)
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        return self.processes.spawn("supervisor", "--children", str(self.table), env=self.env,
                                    log_name="supervisor")

    def start(self) -> Daemon:
        self.proc = self.spawn()
        wait_until(lambda: self.client.status()["ready"], timeout=15,
                   what="every child ready")
        return self

    def row(self, name: str) -> dict[str, Any]:
        return next(r for r in self.client.ps() if r["name"] == name)

    def wait_row(self, name: str, pred: Any, timeout: float = 10.0,
                 what: str = "") -> dict[str, Any]:
        def matching() -> dict[str, Any]:
            row = self.row(name)
            return row if pred(row) else {}

        return wait_until(matching, timeout=timeout, what=what or f"{name} in the expected state")

    def log(self) -> str:
        return "\n".join(p.read_text() for p in (self.run_dir / "test-logs").glob("*.log"))


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_child_killed_with_sigkill_is_restarted_and_ready_again(
        processes: Processes) -> None:
    d = Daemon(processes, [beating("steady")]).start()
    first = d.row("steady")["pid"]
    os.kill(first, signal.SIGKILL)
    row = d.wait_row("steady", lambda r: r["state"] == "RUNNING" and r["pid"] != first,
                     what="a new, ready steady")
    assert row["restarts"] == 1
    assert row["lastExit"] == "SIGKILL"
    assert gone(first)


def test_a_sigstopped_child_is_killed_by_the_watchdog_and_restarted(
        processes: Processes) -> None:
    d = Daemon(processes, [beating("frozen")]).start()
    first = d.row("frozen")["pid"]
    os.kill(first, signal.SIGSTOP)
    stopped_at = time.monotonic()
    row = d.wait_row("frozen", lambda r: r["state"] == "RUNNING" and r["pid"] != first,
                     timeout=10, what="the frozen child replaced")
    assert time.monotonic() - stopped_at >= 0.9  # the heartbeat deadline (1.0s) passed
    assert row["lastExit"] == "SIGKILL"
    assert "no liveness report" in d.log()


def test_a_crash_looping_child_backs_off_is_held_down_then_retried(
        processes: Processes) -> None:
    d = Daemon(processes, [worker("looper", "--exit-after", "0", "--exit-code", "3",
                                  flap_restarts=3, flap_window=30, hold_down=1.5)])
    d.proc = d.spawn()
    seen: list[str] = []

    def held_then_retried() -> bool:
        row = d.row("looper")
        if not seen or seen[-1] != row["state"]:
            seen.append(row["state"])
        return "HOLD-DOWN" in seen and seen[-1] != "HOLD-DOWN"

    wait_until(held_then_retried, timeout=15, interval=0.01, what="hold-down, then a retry")
    assert "BACKOFF" in seen[: seen.index("HOLD-DOWN")]
    row = d.row("looper")
    assert row["lastExit"] == "3"
    assert row["restarts"] >= 4  # three backed-off restarts, then the retry after hold-down


def test_no_child_outlives_a_supervisor_killed_with_sigkill(processes: Processes) -> None:
    d = Daemon(processes, [beating("one"), worker("two", depends_on=["one"])]).start()
    pids = [r["pid"] for r in d.client.ps()]
    assert d.proc is not None
    os.kill(d.proc.pid, signal.SIGKILL)
    wait_until(lambda: all(gone(p) for p in pids), timeout=5,
               what="every child gone after the supervisor died")


def test_an_operator_stop_survives_a_supervisor_restart(processes: Processes) -> None:
    d = Daemon(processes, [beating("kept"), beating("paused")]).start()
    d.client.stop("paused")
    d.wait_row("paused", lambda r: r["state"] == "STOPPED")
    assert d.proc is not None
    old_kept = d.row("kept")["pid"]
    os.kill(d.proc.pid, signal.SIGKILL)  # the hard way: stale pidfiles and sockets
    wait_until(lambda: d.client.supervisor_pid() is None, timeout=5, what="old supervisor gone")
    d.start()
    assert d.row("paused")["state"] == "STOPPED" and d.row("paused")["held"]
    assert d.row("kept")["pid"] != old_kept
    d.client.start("paused")
    d.wait_row("paused", lambda r: r["state"] == "RUNNING")


def test_shutdown_stops_dependents_first_and_kills_what_ignores_term(
        processes: Processes) -> None:
    d = Daemon(processes, [
        beating("base", "--synced-after", "0.3"),
        beating("stubborn", "--ignore-term", depends_on=["base"], stop_grace=0.5),
    ]).start()
    assert d.proc is not None
    log = (d.run_dir / "test-logs")
    text = "\n".join(p.read_text() for p in log.glob("*.log"))
    assert text.index("base: ready") < text.index("stubborn: started")  # start order
    d.proc.send_signal(signal.SIGTERM)
    assert d.proc.wait(timeout=10) == 0
    text = d.log()
    assert "stubborn: sending SIGKILL" in text
    assert text.index("stubborn: sending SIGTERM") < text.index("base: sending SIGTERM")
    assert text.index("stubborn: pid") < text.index("base: sending SIGTERM")


@pytest.mark.parametrize(("args", "spec", "verdict"), [
    (("--alloc-mib", "96"), {"memory_limit": 64 << 20}, "above the limit"),
    (("--beat", "0.1", "--inflight-age", "5"), {"reconcile_deadline": 2}, "reconcile in flight"),
])
def test_the_watchdog_restarts_a_child_that_is_alive_but_unhealthy(
        processes: Processes, args: tuple[str, ...], spec: dict[str, Any], verdict: str) -> None:
    d = Daemon(processes, [worker("sick", *args, **spec)],
               env={"ECSM_ACTORS_SUPERVISOR_MEMORY_INTERVAL": "0.1"}).start()
    d.wait_row("sick", lambda r: r["restarts"] >= 1, what="the sick child restarted")
    assert verdict in d.log()


def test_a_second_supervisor_on_the_same_run_dir_refuses_to_start(
        processes: Processes) -> None:
    d = Daemon(processes, [worker("only")]).start()
    second = d.spawn()
    assert second.wait(timeout=15) == 1
    assert "already running" in d.log()
    assert d.row("only")["state"] == "RUNNING"


def operator(run_dir: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
    env.update(FAST)
    return subprocess.run([OPERATOR, "--run-dir", str(run_dir), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


class InProcess:
    """``ecsm-operator ARGS`` run by its entry point in the test's process, with the
    environment :func:`operator` gives it: the same code and outcome, without an
    interpreter start per command."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch,
                 capsys: pytest.CaptureFixture[str]) -> None:
        self.monkeypatch, self.capsys = monkeypatch, capsys

    def __call__(self, run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        from ecsm_actors.cli.operator import main

        for var in [v for v in os.environ if v.startswith("ECSM_ACTORS_")]:
            self.monkeypatch.delenv(var)
        for var, value in FAST.items():
            self.monkeypatch.setenv(var, value)
        argv = ["--run-dir", str(run_dir), *args]
        self.capsys.readouterr()
        code = main(argv)
        out, err = self.capsys.readouterr()
        return subprocess.CompletedProcess([OPERATOR, *argv], code, out, err)


@pytest.mark.timeout(60)
def test_the_operator_cli_drives_a_running_daemon(
        processes: Processes, run_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    d = Daemon(processes, [beating("alpha"), worker("beta")])
    # The daemon is started by the program a user runs; the other verbs by its entry
    # point in this process (an interpreter start each saved).
    run = InProcess(monkeypatch, capsys)
    missing = run(run_dir, "ps")
    assert missing.returncode == 1
    assert missing.stderr.strip() == (f"error: no supervisor running in {run_dir} "
                                      f"(control socket ipc://{run_dir}/control.sock)")
    started = operator(run_dir, "start", "--children", str(d.table), "--timeout", "20")
    daemon_pid = d.client.supervisor_pid()
    try:
        assert started.returncode == 0, started.stderr
        assert "ready" in started.stdout
        ps = run(run_dir, "ps").stdout.splitlines()
        assert ps[0].split() == ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST-EXIT",
                                 "HEARTBEAT-AGE", "QUEUE", "ROLE"]
        assert [line.split()[:2] for line in ps[1:]] == [["alpha", "RUNNING"],
                                                         ["beta", "RUNNING"]]
        first = d.row("alpha")["pid"]
        assert run(run_dir, "kill", "alpha").returncode == 0
        d.wait_row("alpha", lambda r: r["pid"] not in (None, first) and r["state"] == "RUNNING")
        assert d.row("alpha")["lastExit"] == "SIGKILL"

        restarted = run(run_dir, "restart", "beta")
        assert restarted.returncode == 0 and "beta restarted" in restarted.stdout
        assert run(run_dir, "stop", "beta").returncode == 0
        assert d.row("beta")["state"] == "STOPPED"
        assert run(run_dir, "start", "beta").returncode == 0
        assert d.row("beta")["state"] == "RUNNING"

        stats = run(run_dir, "stats", "alpha", "-o", "json")
        doc = json.loads(stats.stdout)["alpha"]
        assert doc["liveness"]["stats"]["synced"] is True and doc["rss"] > 0
        assert "up" in run(run_dir, "logs", "alpha", "-n", "5").stdout
        bad = run(run_dir, "kill", "nobody")
        assert bad.returncode == 1 and bad.stderr.startswith("error: no child named 'nobody'")

        stopped = run(run_dir, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert daemon_pid is not None and gone(daemon_pid)
    finally:
        if daemon_pid and not gone(daemon_pid):
            os.killpg(daemon_pid, signal.SIGKILL)
    with pytest.raises(ControlError, match="no supervisor running"):
        d.client.ps()


def replaced(client: SupervisorClient, name: str, old_pid: int) -> Callable[[], bool]:
    """A predicate: ``name`` runs again, as another process than ``old_pid``."""
    def check() -> bool:
        row = next(r for r in client.ps() if r["name"] == name)
        return bool(row["state"] == "RUNNING" and row["pid"] != old_pid)

    return check


@pytest.mark.timeout(90)
def test_the_real_children_are_healed_one_for_one_and_keep_reconciling(
        processes: Processes, run_dir: Path) -> None:
    from ecsm_actors.registry.client import RegistryClient

    examples = Path(__file__).resolve().parents[2] / "conf" / "examples"
    operator_run = processes.spawn(OPERATOR, "run", "--simulate", "--apply", str(examples),
                                   module=False, log_name="supervisor")
    cfg = load_config(environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)})
    client = SupervisorClient(cfg)
    wait_until(lambda: client.status()["ready"], timeout=30, what="every child ready")
    registry = RegistryClient(cfg.registry_endpoint, timeout=5)

    def services() -> dict[str, dict[str, Any]]:
        return {o["metadata"]["name"]: o for o in registry.list("ECSMService").items}

    def available(name: str, replicas: int) -> bool:
        return (services()[name].get("status") or {}).get("availableReplicas") == replicas

    wait_until(lambda: available("web", 2) and available("db", 1), timeout=30,
               what="the examples available")
    uids = {n: o["metadata"]["uid"] for n, o in services().items()}
    for victim in ("registry", "service-controller", "hpa-controller"):
        pids = {r["name"]: r["pid"] for r in client.ps()}
        os.kill(pids[victim], signal.SIGKILL)
        wait_until(replaced(client, victim, pids[victim]), timeout=20,
                   what=f"{victim} replaced and ready")
        others = {r["name"]: r["pid"] for r in client.ps() if r["name"] != victim}
        assert others == {n: p for n, p in pids.items() if n != victim}  # one-for-one
    assert {n: o["metadata"]["uid"] for n, o in services().items()} == uids  # nothing lost

    web = services()["web"]
    web["spec"]["deploymentStrategy"]["replicas"] = 3
    registry.update(web)
    wait_until(lambda: available("web", 3), timeout=30, what="web scaled to 3 after the kills")
    registry.close()

    children = [r["pid"] for r in client.ps()]
    os.kill(operator_run.pid, signal.SIGKILL)
    wait_until(lambda: all(gone(p) for p in children), timeout=10,
               what="no child left after the supervisor's kill -9")
