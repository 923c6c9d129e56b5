"""The link agent of a remote context, with real processes: a registry serving its remote
CURVE endpoints on 127.0.0.1, an ``ecsm-cli`` run in-process, the agent it starts in the
background. Every agent is found by its command line (it names this test's directory) and
killed at teardown."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
import zmq

from ecsm_actors import curve, protocol
from ecsm_actors.cli import contexts
from ecsm_actors.cli.ecsm_cli import main as cli_main
from ecsm_actors.protocol import Op
from ecsm_actors.registry import authorized
from ecsm_actors.registry.authorized import Role
from ecsm_actors.registry.client import Subscriber
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import start_registry
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(90)

RunCli = Callable[..., tuple[int, str, str]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def agent_pids(xdg: Path) -> list[int]:
    """Every live link agent of this test (its command line names the test's dir)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if b"link-agent" in cmdline and str(xdg).encode() in cmdline and state != "Z":
            pids.append(int(proc.name))
    return pids


class Remote:
    """A registry serving its remote CURVE endpoints on 127.0.0.1, a client key pair it
    authorizes (write), and a context ``sat`` using them."""

    def __init__(self, processes: Processes, home: Path, xdg: Path) -> None:
        self.processes, self.home, self.xdg = processes, home, xdg
        run = processes.run_dir
        self.port, self.events_port = free_port(), free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.env = {"ECSM_ACTORS_REGISTRY_REMOTE_ENDPOINT": self.endpoint,
                    "ECSM_ACTORS_REGISTRY_REMOTE_EVENTS_ENDPOINT":
                        f"tcp://127.0.0.1:{self.events_port}"}
        server_key = authorized.server_pair(run).public.decode()
        _, self.client_secret = curve.generate(home / "keys", "client")
        authorized.authorize(authorized.authorized_keys_path(run), "ground",
                             curve.load_pair(self.client_secret).public.decode(), Role.WRITE)
        self.registry = self.start_registry()
        path = contexts.config_path(home)
        contexts.set_context(path, "sat", {
            "registry": self.endpoint, "events": f"tcp://127.0.0.1:{self.events_port}",
            "server-key": server_key, "client-key": str(self.client_secret)})
        contexts.use_context(path, "sat")
        self.dir = xdg / "ecsm-cli" / "link" / "sat"

    def start_registry(self) -> Any:
        proc, client = start_registry(self.processes, self.env)
        client.close()
        return proc

    def agent_pid(self) -> int:
        return int(json.loads((self.dir / "agent.json").read_text())["pid"])


@pytest.fixture
def remote(processes: Processes, monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    for var in [v for v in os.environ if v.startswith("ECSM_ACTORS_")]:
        monkeypatch.delenv(var)
    home, xdg = processes.run_dir / "home", processes.run_dir / "x"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    try:
        yield Remote(processes, home, xdg)
    finally:
        for pid in agent_pids(xdg):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def cli(remote: Remote, capsys: pytest.CaptureFixture[str]) -> RunCli:
    def run(*args: str) -> tuple[int, str, str]:
        code = cli_main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def status_row(cli: RunCli) -> list[str]:
    code, out, _ = cli("link", "status")
    assert code == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    return next(r for r in rows if r[0] == "sat")


def test_commands_of_a_remote_context_go_through_one_agent_they_start(
        remote: Remote, cli: RunCli, tmp_path: Path) -> None:
    manifest = tmp_path / "web.yaml"
    manifest.write_text(yaml.safe_dump(service("web")))
    assert agent_pids(remote.xdg) == []
    assert cli("apply", "-f", str(manifest))[:2] == (0, "ecsmservice/web created\n")
    pid = remote.agent_pid()
    code, out, _ = cli("--context", "sat", "get", "esvc")
    assert code == 0 and out.splitlines()[1].split()[0] == "web"
    assert agent_pids(remote.xdg) == [pid] == [remote.agent_pid()]  # one agent, reused
    row = status_row(cli)
    assert row[:5] == ["sat", "yes", str(pid), "yes", remote.endpoint]
    assert int(row[5]) >= 2  # requests forwarded

    # Events come through the agent's XPUB, subscriptions having gone upstream.
    with Subscriber(f"ipc://{remote.dir}/events.sock", kinds=["ECSMService"]) as sub:
        wait_until(lambda: isinstance(sub.recv(0.5), protocol.Heartbeat), timeout=10,
                   what="a heartbeat through the agent")
        assert cli("delete", "esvc", "web")[0] == 0
        event = wait_until(lambda: (lambda m: m if isinstance(m, protocol.Event) else None)(
            sub.recv(0.5)), timeout=10, what="the deletion event through the agent")
        assert (event.type, event.key) == ("DELETED", "default/web")

    os.kill(pid, signal.SIGKILL)  # the next command starts a new agent
    wait_until(lambda: agent_pids(remote.xdg) == [], what="the killed agent to go")
    assert cli("get", "esvc")[0] == 0
    new_pid = remote.agent_pid()
    assert new_pid != pid and agent_pids(remote.xdg) == [new_pid]

    assert cli("link", "down") == (0, f"link sat stopped (pid {new_pid})\n", "")
    assert agent_pids(remote.xdg) == []
    assert status_row(cli)[:2] == ["sat", "no"]
    assert not (remote.dir / "registry.sock").exists()


def test_a_request_during_an_outage_is_answered_not_sent_at_once(
        remote: Remote, cli: RunCli, processes: Processes) -> None:
    assert cli("link", "up")[0] == 0
    processes.kill(remote.registry)
    remote.registry.wait(10)
    wait_until(lambda: status_row(cli)[3] == "no", what="the agent to see the link down")

    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"ipc://{remote.dir}/registry.sock")
    try:
        started = time.monotonic()
        sock.send(protocol.encode_request(Op.PING, "outage-1"))
        assert sock.poll(2000), "the agent did not answer"
        doc = protocol.unpack_reply(sock.recv())
        elapsed = time.monotonic() - started
    finally:
        sock.close()
    assert elapsed < 0.5 and doc["id"] == "outage-1" and doc["ok"] is False
    assert doc["error"]["code"] == "Unavailable"
    assert doc["error"]["message"] == (f"link to {remote.endpoint} is down (connection lost); "
                                       f"request not sent")

    started = time.monotonic()
    code, _, err = cli("--request-timeout", "1.5", "delete", "esvc", "web")
    assert code == 1 and "request not sent" in err
    assert time.monotonic() - started < 5

    remote.registry = remote.start_registry()  # the agent reconnects by itself
    code, out, err = cli("--request-timeout", "20", "get", "esvc")
    assert code == 0, err
    assert status_row(cli)[3] == "yes"


def test_an_idle_agent_exits_and_commands_work_without_one(
        remote: Remote, cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECSM_ACTORS_LINK_IDLE_TIMEOUT", "0.5")
    assert cli("get", "esvc")[0] == 0
    pid = remote.agent_pid()
    wait_until(lambda: pid not in agent_pids(remote.xdg), timeout=15,
               what="the idle agent to exit")
    assert not (remote.dir / "agent.json").exists()

    assert cli("--no-link", "get", "esvc")[0] == 0
    assert agent_pids(remote.xdg) == []

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(remote.xdg / ("d" * 120)))
    code, _, err = cli("get", "esvc")
    assert code == 0
    assert err.count("the link agent could not start") == 1
    assert "too long for ipc sockets" in err and "directly, which is slower" in err
