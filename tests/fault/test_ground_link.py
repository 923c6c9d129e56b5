"""Operating from the ground: ``ecsm-cli`` processes reach a real registry's CURVE remote
endpoints through the link emulator (100–250 ms each way, resets, a blackout), with
keys set up as a crew does (``ecsm-operator keys``, ``ecsm-cli keys generate``).

What a crew relies on: objects applied while connections reset mid-request are each
applied exactly once; a ``watch`` across a blackout prints every change once; a write
retried after the registry was killed -9 gets its first outcome; and nobody without a
key gets anything, a read key cannot write, a revoked key is cut off — even on a
connection the link agent already holds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from ecsm_actors import curve, protocol
from ecsm_actors.cli.ecsm_cli import main as cli_main
from ecsm_actors.cli.operator import main as operator_main
from ecsm_actors.protocol import Event, EventType, Heartbeat, Op
from ecsm_actors.registry.client import RegistryClient, Subscriber
from tests.helpers import Processes, wait_until
from tests.link_emulator import LinkEmulator
from tests.registry_fixtures import start_registry

pytestmark = pytest.mark.timeout(90)

BIN = Path(sys.executable).parent
#: The registry's heartbeat period, for the device and the crews' CLIs alike: a watch
#: takes the link for silent after three periods and four round trips (2-3 s, not 4-5).
HEARTBEAT = {"ECSM_ACTORS_REGISTRY_HEARTBEAT_INTERVAL": "0.25"}
Z85_KEY = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$", re.M)


def manifest(name: str, replicas: int = 1) -> str:
    return (f"apiVersion: ecsm.sh/v1\nkind: ECSMService\nmetadata:\n  name: {name}\n"
            f"spec:\n  deploymentStrategy:\n    type: Dynamic\n    replicas: {replicas}\n"
            f"    nodePool: [node-1, node-2]\n  template:\n    image: app@1.0#sylixos\n")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Device:
    """The device side: a registry serving its remote endpoints on 127.0.0.1, managed
    with ``ecsm-operator``; ``client`` and ``events`` are local (ipc) views of it."""

    processes: Processes
    ports: tuple[int, int]
    proc: subprocess.Popen[Any] | None = None
    client: RegistryClient | None = None
    server_key: str = ""

    @property
    def env(self) -> dict[str, str]:
        return {"ECSM_ACTORS_REGISTRY_REMOTE_ENDPOINT": f"tcp://127.0.0.1:{self.ports[0]}",
                "ECSM_ACTORS_REGISTRY_REMOTE_EVENTS_ENDPOINT":
                    f"tcp://127.0.0.1:{self.ports[1]}", **HEARTBEAT}

    def start(self) -> None:
        if self.client is not None:
            self.client.close()
        self.proc, self.client = start_registry(self.processes, self.env)

    def kill(self) -> None:
        assert self.proc is not None
        self.processes.kill(self.proc)
        self.proc.wait(timeout=10)

    def operator(self, *args: str) -> str:
        proc = subprocess.run([str(BIN / "ecsm-operator"), *args], capture_output=True,
                              env=self.processes.env(self.env), timeout=30, text=True)
        assert proc.returncode == 0, f"ecsm-operator {' '.join(args)}: {proc.stderr}"
        return proc.stdout

    def subscriber(self) -> Subscriber:
        from ecsm_actors.config import load_config
        cfg = load_config(None, environ=self.processes.env(self.env))
        return Subscriber(cfg.events_endpoint)

    def changes_since(self, rv: int) -> list[Event]:
        assert self.client is not None
        return self.client.watch_since(rv).events


@dataclass
class Crew:
    """A crew's side: HOME and XDG_RUNTIME_DIR of its own (its keys, its link agents),
    ``ecsm-cli`` processes given the remote endpoints and keys by environment."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECSM_ACTORS_")}
        return {**env, "HOME": str(self.home), "XDG_RUNTIME_DIR": str(self.home / "xdg"),
                "PYTHONUNBUFFERED": "1", **self.env}

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "ecsm-cli"), *args], input=stdin, text=True,
                              capture_output=True, env=self.environ(), timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen([str(BIN / "ecsm-cli"), *args], text=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.environ(),
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def generate_key(self, name: str) -> tuple[str, Path]:
        """``ecsm-cli keys generate``: (public key, secret key file)."""
        out = self.home / "keys" / name
        done = self.cli("keys", "generate", "--out", str(out))
        assert done.returncode == 0, done.stderr
        return Z85_KEY.findall(done.stdout)[0], out.parent / f"{name}.key_secret"

    def reach(self, device: Device, ports: tuple[int, int], key_file: Path) -> None:
        self.env = {"ECSM_ACTORS_REGISTRY": f"tcp://127.0.0.1:{ports[0]}",
                    "ECSM_ACTORS_REGISTRY_EVENTS": f"tcp://127.0.0.1:{ports[1]}",
                    "ECSM_ACTORS_SERVER_KEY": device.server_key,
                    "ECSM_ACTORS_CLIENT_KEY": str(key_file), **HEARTBEAT}

    def cleanup(self) -> None:
        """Kill the link agents and CLI processes this crew started, by pid."""
        for info in (self.home / "xdg").glob("ecsm-cli/link/*/agent.json"):
            try:
                pid = int(json.loads(info.read_text())["pid"])
                os.kill(pid, signal.SIGKILL)
            except (ValueError, KeyError, OSError):
                pass
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=10)
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()


InProcess = Callable[..., tuple[int, str, str]]


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> InProcess:
    """``run(main, env, *args)``: ``ecsm-operator`` or ``ecsm-cli`` (``main``, its entry
    point) in the test's process with the settings, HOME and XDG_RUNTIME_DIR of ``env``:
    ``(code, out, err)``. The fixtures' key commands run so (an interpreter start each
    saved); the tests' own commands run as programs."""
    def run(main: Callable[[list[str]], int], env: dict[str, str],
            *args: str) -> tuple[int, str, str]:
        with monkeypatch.context() as m:
            for var in [v for v in os.environ if v.startswith("ECSM_ACTORS_")]:
                m.delenv(var)
            for var, value in env.items():
                if var.startswith("ECSM_ACTORS_") or var in ("HOME", "XDG_RUNTIME_DIR"):
                    m.setenv(var, value)
            capsys.readouterr()
            code = main(list(args))
            out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def device(processes: Processes, in_process: InProcess) -> Iterator[Device]:
    dev = Device(processes, (free_port(), free_port()))
    dev.start()
    code, out, err = in_process(operator_main, processes.env(dev.env), "keys", "show")
    keys = Z85_KEY.findall(out)
    assert code == 0 and keys, f"ecsm-operator keys show printed no key: {err}"
    dev.server_key = keys[0]
    yield dev
    if dev.client is not None:
        dev.client.close()


@pytest.fixture
def crews(run_dir: Path) -> Iterator[Any]:
    made: list[Crew] = []

    def make(name: str) -> Crew:
        home = run_dir / name  # short: the link agent's ipc sockets live under it
        (home / "xdg").mkdir(parents=True, mode=0o700)
        made.append(Crew(home))
        return made[-1]

    yield make
    for crew in made:
        crew.cleanup()


@pytest.fixture
def crew(device: Device, crews: Any, in_process: InProcess) -> Crew:
    """A crew with a write key, reaching the device directly (see ``over``)."""
    c: Crew = crews("crew")
    keys = c.home / "keys" / "crew"
    code, out, err = in_process(cli_main, c.environ(), "keys", "generate", "--out", str(keys))
    assert code == 0, err
    public, secret = Z85_KEY.findall(out)[0], keys.parent / "crew.key_secret"
    code, out, err = in_process(operator_main, device.processes.env(device.env), "keys",
                                "authorize", "crew", public, "--role", "write")
    assert code == 0, err
    c.reach(device, device.ports, secret)
    c.secret = secret  # type: ignore[attr-defined]
    return c


@pytest.fixture
def link(device: Device, run_dir: Path) -> Iterator[LinkEmulator]:
    with LinkEmulator(list(device.ports), log_dir=run_dir / "test-logs") as emulator:
        yield emulator


def over(crew: Crew, device: Device, link: LinkEmulator) -> Crew:
    crew.reach(device, (link.ports[0], link.ports[1]), crew.secret)  # type: ignore[attr-defined]
    return crew


def joined(sub: Subscriber) -> None:
    """Wait for a heartbeat: a SUB socket gets only what is published once it joined."""
    wait_until(lambda: isinstance(sub.recv(0.1), Heartbeat), timeout=10,
               what="a heartbeat on the local events socket")


def first_event(sub: Subscriber, timeout: float = 30.0) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = sub.recv(0.05)
        if isinstance(msg, Event):
            return msg
    raise AssertionError(f"no event within {timeout}s")


def added_once_each(events: list[Event], names: list[str]) -> None:
    added = sorted(e.object["metadata"]["name"] for e in events
                   if e.type == EventType.ADDED)
    assert added == sorted(names), f"ADDED events: {added}"
    assert all(e.type == EventType.ADDED for e in events), [str(e.type) for e in events]


# -- exactly once ------------------------------------------------------------------------


def test_twenty_objects_applied_while_connections_reset_mid_request_are_each_applied_once(
        device: Device, crew: Crew, link: LinkEmulator) -> None:
    assert device.client is not None
    link.set(delay=0.25)  # 500 ms round trips
    start_rv = device.client.ping()["resourceVersion"]
    names = [f"svc-{i:02}" for i in range(20)]
    with device.subscriber() as sub:
        joined(sub)
        path = crew.home / "twenty.yaml"
        path.write_text("---\n".join(manifest(n) for n in names))
        apply = over(crew, device, link).popen("--request-timeout", "45", "apply", "-f",
                                               str(path))
        # The first write landed: its answer is on its way back. Cut every connection now,
        # then keep cutting them (every 3 s on average) until the command is done.
        first_event(sub)
        cut = link.reset()
        link.set(reset_every=3.0)
        out, err = apply.communicate(timeout=75)
    assert cut["resets"] >= 1, "no connection was open to be reset mid-request"
    assert apply.returncode == 0, err
    assert sorted(out.splitlines()) == [f"ecsmservice/{n} created" for n in names]
    objects = device.client.list("ECSMService", "default").items
    assert sorted(o["metadata"]["name"] for o in objects) == names
    assert {o["metadata"]["generation"] for o in objects} == {1}
    added_once_each(device.changes_since(start_rv), names)


def test_a_write_retried_after_the_registry_was_killed_gets_its_first_outcome(
        device: Device, crew: Crew, link: LinkEmulator) -> None:
    assert device.client is not None
    link.set(delay=0.1)
    start_rv = device.client.ping()["resourceVersion"]
    with device.subscriber() as sub:
        joined(sub)
        path = crew.home / "precious.yaml"
        path.write_text(manifest("precious"))
        # Each attempt waits 2 s at most for its answer (not 5): the one lost with the
        # registry is sent again sooner, with the same request id.
        over(crew, device, link).env["ECSM_ACTORS_REGISTRY_REQUEST_TIMEOUT"] = "2"
        create = crew.popen("--request-timeout", "40", "create", "-f", str(path))
        # Committed and published: the answer is still on the link when the registry dies
        # and the connection with it.
        first_event(sub)
    device.kill()
    link.reset()
    device.start()
    out, err = create.communicate(timeout=60)
    assert create.returncode == 0, err  # not "already exists"
    assert out.strip() == "ecsmservice/precious created"
    assert device.client.get("ECSMService", "default", "precious")["metadata"][
        "generation"] == 1
    added_once_each(device.changes_since(start_rv), ["precious"])


# -- watch across a blackout -------------------------------------------------------------


def test_a_watch_across_a_blackout_prints_every_change_once(
        device: Device, crew: Crew, link: LinkEmulator) -> None:
    client = device.client
    assert client is not None
    link.set(delay=0.15)
    start_rv = client.ping()["resourceVersion"]
    watch = over(crew, device, link).popen("watch", "esvc", "-o", "json",
                                           "--since", str(start_rv))
    lines: list[dict[str, Any]] = []
    notices: list[str] = []

    def read(stream: Any, into: list[Any], parse: bool) -> None:
        for line in stream:
            into.append(json.loads(line) if parse else line)

    threading.Thread(target=read, args=(watch.stdout, lines, True), daemon=True).start()
    threading.Thread(target=read, args=(watch.stderr, notices, False), daemon=True).start()

    def printed(name: str, kind: str = "ADDED") -> bool:
        return any(d["type"] == kind and d["object"]["metadata"]["name"] == name
                   for d in lines)

    # Printed once the watch is up (replayed from --since if it came before).
    client.create({"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
                   "metadata": {"name": "before", "namespace": "default"},
                   "spec": {"deploymentStrategy": {"type": "Dynamic", "replicas": 1,
                                                   "nodePool": ["node-1"]},
                            "template": {"image": "app@1.0#sylixos"}}})
    wait_until(lambda: printed("before"), timeout=20, what="the watch to print a change")

    def service(name: str, replicas: int = 1) -> dict[str, Any]:
        return {"apiVersion": "ecsm.sh/v1", "kind": "ECSMService",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"deploymentStrategy": {"type": "Dynamic", "replicas": replicas,
                                                "nodePool": ["node-1"]},
                         "template": {"image": "app@1.0#sylixos"}}}

    # The pass ends: every connection drops, new ones fail, while the device changes.
    with link.blacked_out(reset=True):
        for name in ("dark-1", "dark-2", "dark-3"):
            client.create(service(name))
        client.apply(service("before", replicas=2))
        client.delete("ECSMService", "default", "dark-2")
        wait_until(lambda: any("silent" in n for n in notices), timeout=20,
                   what="the watch to say the link is silent")
    client.create(service("after"))
    wait_until(lambda: printed("after"), timeout=30, what="the watch to print again")
    watch.send_signal(signal.SIGINT)
    watch.wait(timeout=10)

    expected = [(str(e.type), e.object["metadata"]["name"], e.resource_version)
                for e in device.changes_since(start_rv)]
    seen = [(d["type"], d["object"]["metadata"]["name"], d["resourceVersion"]) for d in lines]
    assert seen == expected, f"printed {seen}, committed {expected}"
    assert len(expected) == 7


# -- keys --------------------------------------------------------------------------------


def test_an_unknown_key_gets_nothing_at_all(device: Device, crews: Any) -> None:
    stranger = crews("stranger")
    _, secret = stranger.generate_key("stranger")
    keys = curve.ClientKeys.load(device.server_key, secret)
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    keys.apply(sock)
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    sock.connect(f"tcp://127.0.0.1:{device.ports[0]}")
    try:
        sock.send(protocol.encode_request(Op.PING, 1))
        # Refused at the handshake (ZAP): the client is told so, and never answered.
        assert monitor.poll(5000), "the handshake of an unknown key did not fail"
        assert recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
        assert not sock.poll(100), "the registry answered an unknown key"
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close()
    stranger.reach(device, device.ports, secret)
    done = stranger.cli("--request-timeout", "1", "get", "esvc")
    assert done.returncode == 1 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_read_key_reads_but_cannot_write(device: Device, crews: Any) -> None:
    assert device.client is not None
    reader = crews("reader")
    public, secret = reader.generate_key("reader")
    device.operator("keys", "authorize", "ground-ro", public, "--role", "read")
    reader.reach(device, device.ports, secret)
    assert reader.cli("get", "esvc").returncode == 0
    done = reader.cli("create", "-f", "-", stdin=manifest("intruder"))
    assert done.returncode == 1
    assert "forbidden" in done.stderr.lower() and len(done.stderr.strip().splitlines()) == 1
    assert device.client.list("ECSMService", "default").items == []


def test_a_revoked_key_is_cut_off_even_on_an_open_connection(
        device: Device, crew: Crew) -> None:
    assert crew.cli("get", "esvc").returncode == 0  # the link agent now holds a connection
    device.operator("keys", "revoke", "crew")  # applies within a second

    def cut_off() -> bool:
        done = crew.cli("--request-timeout", "1", "get", "esvc")
        assert done.stdout == ""
        return done.returncode == 1

    wait_until(cut_off, timeout=10, interval=0, what="the revoked key to get no answer")
    done = crew.cli("--request-timeout", "2", "create", "-f", "-", stdin=manifest("late"))
    assert done.returncode == 1
    assert device.client is not None
    assert device.client.list("ECSMService", "default").items == []
