"""``ecsm-cli watch`` against a real registry process: ``--since`` replays and then follows
(past heartbeats), a watch resumes across CLI restarts and refuses to resume into a
replaced store, and a watch whose registry is killed says the link is silent, reconnects
and prints every change exactly once."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.helpers import Processes
from tests.registry_fixtures import RunCli, StartRegistry
from tests.registry_samples import hpa, service

pytestmark = pytest.mark.timeout(60)

#: A fast heartbeat, for the registry and the watching CLI alike (silence after ~1.3 s).
FAST = {"ECSM_ACTORS_REGISTRY_HEARTBEAT_INTERVAL": "0.1"}


def apply(cli: RunCli, *docs: dict[str, Any]) -> None:
    code, _, err = cli("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))
    assert code == 0, err


def changes(out: str) -> list[list[str]]:
    return [line.split()[:3] for line in out.splitlines()]


def test_watch_since_replays_the_log_then_follows_past_heartbeats(cli) -> None:
    apply(cli, service("a"), hpa("a"), service("b"))
    # 1.5 s: at least one heartbeat comes (registry.heartbeat_interval is 1 s) and the
    # watch compares its epoch with the one it read.
    code, out, err = cli("watch", "esvc", "--since", "0", "--timeout", "1.5")
    assert code == 0, err
    assert changes(out) == [["1", "ADDED", "ecsmservice/a"], ["3", "ADDED", "ecsmservice/b"]]
    assert err.splitlines()[-1] == "resume with: ecsm-cli watch esvc --since 3"


def test_a_watch_resumes_where_the_last_one_stopped(cli) -> None:
    apply(cli, service("a"))
    code, _, err = cli("watch", "esvc", "--since", "0", "--count", "1")
    assert code == 0 and err.endswith("resume with: ecsm-cli watch esvc --since 1\n")
    apply(cli, service("b"), hpa("b"))
    code, out, _ = cli("watch", "esvc", "--resume", "--count", "1")
    assert (code, changes(out)) == (0, [["2", "ADDED", "ecsmservice/b"]])
    code, out, _ = cli("watch", "esvc", "--since", "1", "--count", "1")
    assert (code, changes(out)) == (0, [["2", "ADDED", "ecsmservice/b"]])


def test_resuming_into_a_replaced_store_is_refused_with_since_and_restarts_with_resume(
        cli, processes: Processes, registry: StartRegistry) -> None:
    apply(cli, service("a"), service("b"))
    assert cli("watch", "esvc", "--since", "0", "--count", "2")[0] == 0
    proc = processes.children[0]
    processes.kill(proc)
    proc.wait(timeout=10)
    shutil.rmtree(processes.run_dir / "data")
    registry()
    apply(cli, service("c"), service("d"), service("e"))
    code, out, err = cli("watch", "esvc", "--since", "2", "--timeout", "0.2")
    assert (code, out) == (1, "")
    assert "replaced" in err and "without --since" in err and "resume with" not in err
    code, out, err = cli("watch", "esvc", "--resume", "--timeout", "0.2")
    assert (code, out) == (0, "")
    assert "the registry store was replaced since resourceVersion 2 was seen" in err
    assert err.splitlines()[-1] == "resume with: ecsm-cli watch esvc --since 3"


def watch_process(processes: Processes, *args: str) -> subprocess.Popen[str]:
    """``ecsm-cli watch ARGS`` in a process of its own (killed at teardown)."""
    code = "import sys; from ecsm_actors.cli.ecsm_cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-c", code, "watch", *args],
                            env=processes.env(FAST), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    processes.children.append(proc)  # type: ignore[arg-type]
    return proc


def test_a_watch_outlives_a_killed_registry_and_prints_every_change_once(
        cli, processes: Processes, registry: StartRegistry) -> None:
    processes.kill(processes.children[0])  # the fixture's registry: again with FAST
    processes.children[0].wait(timeout=10)
    first, _ = registry(FAST)
    watch = watch_process(processes, "esvc", "--since", "0", "--count", "4")
    assert watch.stdout is not None and watch.stderr is not None
    apply(cli, service("a"))
    assert watch.stdout.readline().split()[:3] == ["1", "ADDED", "ecsmservice/a"]
    processes.kill(first)
    first.wait(timeout=10)
    silent = watch.stderr.readline()
    assert silent.startswith("link silent for ") and silent.endswith(" s, reconnecting…\n")
    registry(FAST)
    apply(cli, service("b"), hpa("b"), service("c"))
    apply(cli, service("d"))
    out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert changes(out) == [["2", "ADDED", "ecsmservice/b"], ["4", "ADDED", "ecsmservice/c"],
                            ["5", "ADDED", "ecsmservice/d"]]
    assert err.splitlines()[-1] == "resume with: ecsm-cli watch esvc --since 5"


def test_ctrl_c_ends_a_watch_with_the_version_to_resume_from(
        cli, processes: Processes) -> None:
    watch = watch_process(processes, "esvc", "--since", "0")
    assert watch.stdout is not None
    apply(cli, service("a"))
    assert watch.stdout.readline().split()[:3] == ["1", "ADDED", "ecsmservice/a"]
    watch.send_signal(signal.SIGINT)
    out, err = watch.communicate(timeout=10)
    assert (watch.returncode, out) == (1, "")
    lines = err.splitlines()
    assert "resume with: ecsm-cli watch esvc --since 1" in lines and lines[-1] == "aborted"
