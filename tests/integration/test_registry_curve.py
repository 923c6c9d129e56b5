"""The registry's remote endpoints with real CURVE: a write key writes, a read key reads
and subscribes but any write is Forbidden, an unknown key gets nothing (logged once), a
revoked key is cut off — requests and events — while another keeps working, ipc is
unchanged, plain TCP beyond loopback is refused at start, and ``ecsm-operator keys``
manages all of it without a restart.

Clients are raw ZeroMQ sockets with CURVE options, so each test controls exactly which
request is sent on which connection."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from ecsm_actors import curve, protocol
from ecsm_actors.cli.operator import main as operator_main
from ecsm_actors.curve import ClientKeys
from ecsm_actors.errors import Forbidden
from ecsm_actors.protocol import Event, Op
from ecsm_actors.registry import authorized
from ecsm_actors.registry.authorized import Role
from ecsm_actors.registry.client import RegistryClient, Subscriber
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import StartRegistry, registry_starter
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(60)

REMOTE = {"ECSM_ACTORS_REGISTRY_REMOTE_ENDPOINT": "tcp://127.0.0.1:*",
          "ECSM_ACTORS_REGISTRY_REMOTE_EVENTS_ENDPOINT": "tcp://127.0.0.1:*",
          "ECSM_ACTORS_REGISTRY_HEARTBEAT_INTERVAL": "0.2"}
Keys = tuple[bytes, bytes]


@pytest.fixture
def registry(processes: Processes) -> Any:
    yield from registry_starter(processes)


class Sockets:
    """Client sockets of a test, all closed at teardown."""

    def __init__(self) -> None:
        self.context: zmq.Context[Any] = zmq.Context()
        self.open: list[zmq.Socket[Any]] = []

    def socket(self, kind: int) -> zmq.Socket[Any]:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        self.open.append(sock)
        return sock

    def close(self) -> None:
        for sock in self.open:
            sock.close(linger=0)
        self.context.term()


@pytest.fixture
def context() -> Any:
    sockets = Sockets()
    yield sockets
    sockets.close()


class Remote:
    """The remote endpoints of a running registry, read from its log."""

    def __init__(self, processes: Processes, context: Sockets) -> None:
        self.processes, self.context = processes, context
        line = wait_until(lambda: re.search(r"remote endpoints (\S+) and (\S+) with CURVE",
                                            self.log()), what="the remote endpoints")
        self.endpoint, self.events = line.group(1), line.group(2)
        self.server_key = authorized.server_pair(processes.run_dir).public

    def log(self) -> str:
        return "".join(p.read_text() for p in (self.processes.run_dir / "test-logs")
                       .glob("registry.*.log"))

    def socket(self, kind: int, keys: Keys) -> zmq.Socket[Any]:
        sock = self.context.socket(kind)
        sock.setsockopt(zmq.CURVE_SERVERKEY, self.server_key)
        sock.setsockopt(zmq.CURVE_PUBLICKEY, keys[0])
        sock.setsockopt(zmq.CURVE_SECRETKEY, keys[1])
        return sock

    def request(self, keys: Keys, op: Op, timeout: float = 3.0, frame: bytes | None = None,
                **fields: Any) -> dict[str, Any] | None:
        """One request (or ``frame``) on a fresh connection: the reply, or None when none
        came."""
        sock = self.socket(zmq.DEALER, keys)
        sock.connect(self.endpoint)
        try:
            sock.send_multipart([b"", frame or protocol.encode_request(op, 1, **fields)])
            if not sock.poll(int(timeout * 1000)):
                return None
            return dict(msgpack.unpackb(sock.recv_multipart()[-1]))
        finally:
            sock.close()

    def refused(self, keys: Keys, op: Op) -> bool:
        """One request on a fresh connection: True once its handshake failed (the ZAP
        handler refused the key: the client is told at once) and no reply came."""
        sock = self.socket(zmq.DEALER, keys)
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        sock.connect(self.endpoint)
        try:
            sock.send_multipart([b"", protocol.encode_request(op, 1)])
            failed = bool(monitor.poll(5000)) and (
                recv_monitor_message(monitor)["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH)
            return failed and not sock.poll(100)
        finally:
            sock.disable_monitor()
            monitor.close(linger=0)
            sock.close()

    def subscriber(self, keys: Keys) -> zmq.Socket[Any]:
        sock = self.socket(zmq.SUB, keys)
        sock.setsockopt(zmq.SUBSCRIBE, b"")
        sock.connect(self.events)
        return sock


def events_until(sock: zmq.Socket[Any], name: str, timeout: float = 5.0) -> list[bytes]:
    """Messages received until an event naming ``name`` (fails at the deadline)."""
    seen: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sock.poll(100):
            frames = sock.recv_multipart()
            seen.append(frames[-1])
            if name.encode() in frames[-1]:
                return seen
    raise AssertionError(f"no event for {name} within {timeout}s ({len(seen)} messages)")


def drain(sock: zmq.Socket[Any], wait: float) -> list[bytes]:
    """Messages received within ``wait`` seconds (and those already queued)."""
    seen: list[bytes] = []
    deadline = time.monotonic() + wait
    while sock.poll(max(0, int((deadline - time.monotonic()) * 1000))):
        seen.append(sock.recv_multipart()[-1])
    return seen


def authorize(run_dir: Path, name: str, role: Role) -> Keys:
    public, secret = zmq.curve_keypair()
    authorized.authorize(authorized.authorized_keys_path(run_dir), name, public.decode(), role)
    return public, secret


def operator(run_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``ecsm-operator --run-dir RUN_DIR ARGS`` in a process of its own."""
    return subprocess.run([sys.executable, "-c", "import sys; from ecsm_actors.cli.operator "
                           "import main; sys.exit(main())", "--run-dir", str(run_dir), *args],
                          capture_output=True, text=True, timeout=30)


def test_a_write_key_writes_and_a_read_key_reads_and_watches_but_cannot_write(
        processes: Processes, registry: StartRegistry, context: Sockets) -> None:
    writer = authorize(processes.run_dir, "ground-1", Role.WRITE)
    reader = authorize(processes.run_dir, "viewer", Role.READ)
    _, local = registry(REMOTE)
    remote = Remote(processes, context)
    watching = remote.subscriber(reader)
    wait_until(lambda: watching.poll(100), what="a heartbeat on the remote events")

    created = remote.request(writer, Op.CREATE, object=service("web"))
    assert created is not None and created["ok"], created
    events_until(watching, "web")
    assert remote.request(reader, Op.GET, kind="ECSMService", namespace="default",
                          name="web")["ok"]
    listed = remote.request(reader, Op.LIST, kind="ECSMService", namespace=None)
    assert [o["metadata"]["name"] for o in listed["result"]["items"]] == ["web"]
    for op, fields in ((Op.CREATE, {"object": service("evil")}),
                       (Op.DELETE, {"kind": "ECSMService", "namespace": "default",
                                    "name": "web"}),
                       (Op.BATCH, {"writes": [{"op": "CREATE", "object": service("b")}]})):
        refused = remote.request(reader, op, **fields)
        assert refused is not None and refused["error"]["code"] == "Forbidden"
        assert refused["error"]["message"] == (f"key viewer has the role read: {op} refused "
                                               "(a write key is needed)")
    assert local.get("ECSMService", "default", "web")["metadata"]["resourceVersion"] == 1
    for frame in (b"\xc1 not msgpack", msgpack.packb({"v": 1, "id": 7, "op": ["GET"]})):
        bad = remote.request(reader, Op.PING, frame=frame)
        assert bad is not None and bad["error"]["code"] == "BadRequest", bad

    # A role change applies to the next request, on the same connection.
    authorize_again = authorized.authorized_keys_path(processes.run_dir)
    authorized.authorize(authorize_again, "viewer", reader[0].decode(), Role.WRITE)
    wait_until(lambda: remote.request(reader, Op.CREATE, object=service("now"))["ok"],
               what="the viewer's write once it has the role write")
    local.ping()  # ipc unchanged


def test_unknown_and_revoked_keys_get_nothing_while_another_key_keeps_working(
        processes: Processes, registry: StartRegistry, context: Sockets,
        capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = processes.run_dir
    shown = operator(run_dir, "keys", "show")  # creates the pair the registry will use
    assert shown.returncode == 0 and len(shown.stdout.strip()) == 40
    crew = zmq.curve_keypair()
    done = operator(run_dir, "keys", "authorize", "crew", crew[0].decode(), "--role", "write")
    assert done.returncode == 0 and done.stdout.startswith("crew authorized"), done
    ops = authorize(run_dir, "ops", Role.READ)
    _, local = registry(REMOTE)
    remote = Remote(processes, context)
    assert remote.server_key.decode() == shown.stdout.strip()

    stranger = zmq.curve_keypair()
    assert remote.refused(stranger, Op.PING)
    assert remote.refused(stranger, Op.PING)
    refusals = re.findall("key " + re.escape(stranger[0].decode()) + " is not authorized",
                          remote.log())
    assert len(refusals) == 1
    assert "secret" not in remote.log().lower()

    crew_events, ops_events = remote.subscriber(crew), remote.subscriber(ops)
    crew_conn = remote.socket(zmq.REQ, crew)
    crew_conn.connect(remote.endpoint)
    crew_conn.send(protocol.encode_request(Op.PING, 1))
    assert crew_conn.poll(3000)
    crew_conn.recv()
    assert remote.request(crew, Op.CREATE, object=service("before"))["ok"]
    events_until(ops_events, "before")
    events_until(crew_events, "before")

    assert operator_main(["--run-dir", str(run_dir), "keys", "list"]) == 0
    assert re.search(r"^crew +write +\S{40}$", capsys.readouterr().out, re.M)
    assert operator_main(["--run-dir", str(run_dir), "keys", "authorize", "x", "bad"]) == 1
    assert capsys.readouterr().err == ("error: PUBLIC_KEY is neither a CURVE public key "
                                       "(40 Z85 characters) nor a key file\n")
    revoked = operator(run_dir, "keys", "revoke", "crew")
    assert revoked.returncode == 0 and revoked.stdout.startswith("crew revoked")

    # Its already-open connection: the next request is never answered.
    wait_until(lambda: "access withdrawn from crew" in remote.log(), what="the revocation")
    crew_conn.send(protocol.encode_request(Op.PING, 2))
    assert not crew_conn.poll(1000)
    crew_conn.close()
    assert remote.refused(crew, Op.PING)
    # The other key reconnects by itself and is served; the revoked stream is silent.
    def seen_after(i: int) -> bool:  # events published while it reconnects are missed
        local.create(service(f"after-{i}"))
        return any(b"after-" in m for m in drain(ops_events, 0.3))

    assert any(seen_after(i) for i in range(20))
    assert remote.request(ops, Op.GET, kind="ECSMService", namespace="default",
                          name="after-0")["ok"]
    assert not [m for m in drain(crew_events, 0) if b"after-" in m]
    assert not crew_events.poll(600), "the revoked key still receives heartbeats (0.2 s)"
    local.ping()


def test_plain_tcp_beyond_loopback_is_refused_at_start(processes: Processes) -> None:
    proc = processes.spawn("registry", env={"ECSM_ACTORS_REGISTRY_ENDPOINT":
                                            "tcp://0.0.0.0:7700"}, log_name="registry")
    assert proc.wait(timeout=20) == 2
    lines = [line for line in processes.logs().splitlines()
             if line and not line.startswith("====")]
    assert lines == ["error: config key registry.endpoint: 'tcp://0.0.0.0:7700' would serve "
                     "the registry without encryption or authentication: plain tcp:// only "
                     "on a loopback address (127.0.0.1, ::1); for remote access set "
                     "registry.remote_endpoint / registry.remote_events_endpoint (served "
                     "with CURVE)"]


def test_the_project_client_and_subscriber_with_keys_ride_out_a_revocation(
        processes: Processes, registry: StartRegistry, context: Sockets) -> None:
    """RegistryClient/Subscriber with ``curve=``: a read key's write raises Forbidden; when
    another key is revoked every connection is dropped, and the write key's client and
    subscriber reconnect by themselves: its writes are answered, and once the subscriber
    is back their events arrive (those published while it reconnected are missed: an
    informer replays them by ``seq``)."""
    keys_dir = processes.run_dir / "client-keys"
    path = authorized.authorized_keys_path(processes.run_dir)
    secrets = {}
    for name, role in (("crew", Role.WRITE), ("viewer", Role.READ), ("old", Role.READ)):
        _, secret = curve.generate(keys_dir, name)
        authorized.authorize(path, name, curve.load_pair(secret).public.decode(), role)
        secrets[name] = secret
    registry(REMOTE)
    remote = Remote(processes, context)
    server_key = remote.server_key.decode()
    crew = RegistryClient(remote.endpoint, timeout=2.0, deadline=10.0,
                          curve=ClientKeys.load(server_key, secrets["crew"]))
    viewer = RegistryClient(remote.endpoint, timeout=2.0,
                            curve=ClientKeys.load(server_key, secrets["viewer"]))
    events = Subscriber(remote.events, curve=ClientKeys.load(server_key, secrets["crew"]))
    try:
        assert events.recv(timeout=5.0) is not None  # connected: a heartbeat
        crew.create(service("one"))
        with pytest.raises(Forbidden, match="^key viewer has the role read: CREATE refused"):
            viewer.create(service("two"))
        assert viewer.get("ECSMService", "default", "one")["metadata"]["name"] == "one"

        authorized.revoke(path, "old")
        wait_until(lambda: "access withdrawn from old" in remote.log(), what="the rebind")
        written: list[str] = []

        def write_and_see() -> bool:  # events published while it reconnects are missed
            written.append(f"three-{len(written)}")
            crew.create(service(written[-1]))  # retried on a new connection if need be
            deadline = time.monotonic() + 0.5
            while (message := events.recv(timeout=max(0.0, deadline - time.monotonic()))):
                if isinstance(message, Event) and message.key.startswith("default/three-"):
                    return True
            return False

        wait_until(write_and_see, timeout=10.0, interval=0, what="an event after the rebind")
    finally:
        for closing in (crew, viewer, events):
            closing.close()
