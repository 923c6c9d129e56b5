"""RegistryClient retries, in one place: against a fake registry (a ROUTER socket in a thread,
real ZeroMQ on ipc:// in the run dir, CURVE included) that swallows, drops, refuses or
answers each attempt as the test wants; and against a real registry process killed -9
with a write in flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq
from zmq.auth.thread import ThreadAuthenticator

from ecsm_actors import curve, protocol
from ecsm_actors.errors import Conflict, DeadlineExceeded, NotFound
from ecsm_actors.registry.client import RegistryClient, Subscriber
from tests.helpers import Processes, wait_until
from tests.link_emulator import LinkEmulator
from tests.registry_fixtures import StartRegistry, registry_config
from tests.registry_samples import service

#: What the fake does with the n-th request (1-based): None swallows it, "drop" closes
#: the connection, a dict is sent back as the reply (``id`` and ``v`` filled in), a
#: (seconds, dict) pair is sent back that much later (a slow link: others meanwhile).
Script = Callable[[int, dict[str, Any]],
                  dict[str, Any] | tuple[float, dict[str, Any]] | str | None]


def ok(result: Any, **extra: Any) -> dict[str, Any]:
    return {"ok": True, "epoch": "e1", "result": result, **extra}


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "epoch": "e1", "error": {"code": code, "message": message,
                                                  "causes": []}, **extra}


class FakeRegistry(threading.Thread):
    """A registry that follows a script; records every request frame it receives."""

    def __init__(self, endpoint: str, script: Script,
                 server_pair: curve.KeyPair | None = None) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.script, self.server_pair = endpoint, script, server_pair
        self.context: zmq.Context[Any] = zmq.Context()
        self.requests: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.bound = threading.Event()

    def _bind(self) -> zmq.Socket[Any]:
        sock = self.context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        if self.server_pair is not None:
            curve.apply_server(sock, self.server_pair)
        sock.bind(self.endpoint)
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)  # tcp://127.0.0.1:* → port
        return sock

    def run(self) -> None:
        sock = self._bind()
        self.bound.set()
        later: list[tuple[float, list[bytes]]] = []
        try:
            while not self.stop.is_set():
                while later and later[0][0] <= time.monotonic():
                    sock.send_multipart(later.pop(0)[1])
                if not sock.poll(5 if later else 20):
                    continue
                peer, empty, body = sock.recv_multipart()
                doc = msgpack.unpackb(body, raw=False)
                self.requests.append(doc)
                action = self.script(len(self.requests), doc)
                delay = 0.0
                if isinstance(action, tuple):
                    delay, action = action
                if action == "drop":
                    sock.close(linger=0)
                    sock = self._bind()
                elif isinstance(action, dict):
                    reply = {"v": protocol.VERSION, "id": doc["id"], **action}
                    frames = [peer, empty, protocol.pack(reply)]
                    later.append((time.monotonic() + delay, frames))
                    later.sort(key=lambda item: item[0])
        finally:
            sock.close(linger=0)

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        self.context.term()


@pytest.fixture
def fake(run_dir: Path) -> Iterator[Callable[..., FakeRegistry]]:
    started: list[FakeRegistry] = []

    def start(script: Script, server_pair: curve.KeyPair | None = None,
              endpoint: str = "") -> FakeRegistry:
        registry = FakeRegistry(endpoint or f"ipc://{run_dir}/fake-{len(started)}.sock",
                                script, server_pair)
        registry.start()
        assert registry.bound.wait(5)
        started.append(registry)
        return registry

    yield start
    for registry in started:
        registry.close()


@pytest.mark.timeout(30)
def test_a_swallowed_write_is_retried_with_the_same_envelope_and_request_ids(
        fake: Callable[..., FakeRegistry]) -> None:
    registry = fake(lambda n, doc: None if n == 1 else ok(doc["object"]))
    waits: list[tuple[int, float]] = []
    with RegistryClient(registry.endpoint, timeout=0.5, deadline=5,
                        on_wait=lambda attempt, elapsed: waits.append((attempt, elapsed))) as c:
        assert c.create(service("web"))["metadata"]["name"] == "web"
    first, second = registry.requests
    assert first == second
    assert first["requestId"]
    assert [attempt for attempt, _ in waits] == [2]
    assert 0.4 < waits[0][1] < 2.0  # after the attempt's timeout (0.5 s), not the deadline


@pytest.mark.timeout(30)
def test_a_dropped_connection_is_retried_at_once_not_after_the_attempt_timeout(
        fake: Callable[..., FakeRegistry]) -> None:
    registry = fake(lambda n, doc: "drop" if n == 2 else ok({"pid": 1}))
    with RegistryClient(registry.endpoint, timeout=20, deadline=30) as c:
        c.ping()
        c.rtt.observe(5.0)  # a slow round trip was measured: an attempt may wait 5 s
        assert c.rtt.rto() > 5
        started = time.monotonic()
        assert c.ping() == {"pid": 1}
        assert time.monotonic() - started < 2.0
    assert len(registry.requests) == 3


@pytest.mark.timeout(30)
def test_a_slow_answer_is_waited_for_once_the_round_trip_is_known_to_be_slow(
        fake: Callable[..., FakeRegistry]) -> None:
    def slow(n: int, doc: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        return (0.45 if n > 1 else 0.0), ok({"pid": 1})  # then over twice the RTO floor

    registry = fake(slow)
    with RegistryClient(registry.endpoint, timeout=5, deadline=10) as c:
        c.ping()  # fast: the RTO drops to its floor of 0.2 s
        c.ping()  # 0.45 s: cut at the floor and retried, until the RTO learns the link
        requests_before = len(registry.requests)
        for _ in range(3):
            c.ping()
        assert len(registry.requests) - requests_before == 3  # no attempt given up on


@pytest.mark.timeout(30)
def test_without_any_registry_a_write_ends_at_the_deadline_known_not_applied(
        run_dir: Path) -> None:
    endpoint = f"ipc://{run_dir}/nobody.sock"
    waits: list[int] = []
    with RegistryClient(endpoint, timeout=0.2, deadline=1.0,
                        on_wait=lambda attempt, elapsed: waits.append(attempt)) as c:
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded) as info:
            c.create(service("web"))
        elapsed = time.monotonic() - started
    assert info.value.applied is False
    assert 0.7 < elapsed < 2.0
    message = str(info.value)
    assert endpoint in message and "CREATE" in message and "attempts" in message
    assert "not applied" in message and "\n" not in message
    assert waits == list(range(2, len(waits) + 2)) and waits


@pytest.mark.timeout(30)
def test_a_write_that_reached_a_silent_registry_ends_at_the_deadline_applied_unknown(
        fake: Callable[..., FakeRegistry]) -> None:
    registry = fake(lambda n, doc: None)
    with RegistryClient(registry.endpoint, timeout=0.3, deadline=1.0) as c:
        with pytest.raises(DeadlineExceeded) as info:
            c.delete("ECSMService", "default", "web")
    assert info.value.applied is None
    assert "may or may not have been applied" in str(info.value)
    ids = {r["requestId"] for r in registry.requests}
    assert len(registry.requests) >= 2 and len(ids) == 1


@pytest.mark.timeout(30)
def test_an_error_answer_is_not_retried_but_unavailable_is(
        fake: Callable[..., FakeRegistry]) -> None:
    def script(n: int, doc: dict[str, Any]) -> dict[str, Any]:
        if doc["op"] == "UPDATE":
            return error("Conflict", "stale resourceVersion")
        if n <= 2:
            return error("Unavailable", "link agent: not sent")
        return ok(doc["object"])

    registry = fake(script)
    with RegistryClient(registry.endpoint, timeout=1, deadline=10) as c:
        assert c.create(service("web"))["metadata"]["name"] == "web"
        assert len(registry.requests) == 3
        with pytest.raises(Conflict):
            c.update(service("web"))
    assert len(registry.requests) == 4


@pytest.mark.timeout(30)
def test_unavailable_answers_until_the_deadline_mean_not_applied(
        fake: Callable[..., FakeRegistry]) -> None:
    registry = fake(lambda n, doc: error("Unavailable", "link agent: registry unreachable"))
    with RegistryClient(registry.endpoint, timeout=0.3, deadline=0.8) as c:
        with pytest.raises(DeadlineExceeded) as info:
            c.apply(service("web"))
        assert c.rtt.srtt is None  # a link agent's quick "not sent" is no round trip
    assert info.value.applied is False
    assert "registry unreachable" in str(info.value)


@pytest.mark.timeout(30)
def test_each_write_gets_a_fresh_request_id_unless_one_is_given(
        fake: Callable[..., FakeRegistry]) -> None:
    registry = fake(lambda n, doc: ok(doc.get("object")))
    with RegistryClient(registry.endpoint) as c:
        c.create(service("a"))
        c.update(service("a"))
        c.update_status(service("a"))
        c.delete("ECSMService", "default", "a", request_id="crew-7.1")
        c.get("ECSMService", "default", "a")
    ids = [r.get("requestId") for r in registry.requests]
    assert len(set(ids[:3])) == 3 and None not in ids[:3]
    assert ids[3:] == ["crew-7.1", None]


@pytest.mark.timeout(30)
def test_a_replayed_answer_is_reported_for_results_and_errors(
        fake: Callable[..., FakeRegistry]) -> None:
    def script(n: int, doc: dict[str, Any]) -> dict[str, Any]:
        if n == 1:
            return ok(doc["object"], replayed=True)
        if n == 2:
            return error("NotFound", "ECSMService default/web not found", replayed=True)
        return ok({"pid": 1})

    registry = fake(script)
    with RegistryClient(registry.endpoint) as c:
        c.create(service("web"))
        assert c.last_replayed is True
        with pytest.raises(NotFound) as info:
            c.delete("ECSMService", "default", "web")
        assert info.value.replayed is True
        c.ping()
        assert c.last_replayed is False


@pytest.mark.timeout(30)
def test_a_batch_gives_one_typed_outcome_per_write_and_a_list_gives_its_next_page(
        fake: Callable[..., FakeRegistry]) -> None:
    def script(n: int, doc: dict[str, Any]) -> dict[str, Any]:
        if doc["op"] == "BATCH":
            return ok({"resourceVersion": 9, "results": [
                {"ok": True, "result": doc["writes"][0]["object"]},
                {"ok": False, "error": {"code": "Aborted", "message": "not applied",
                                        "causes": []}}]})
        return ok({"resourceVersion": 4, "items": [{"n": 1}], "continue": "tok2",
                   "remainingItemCount": 7})

    registry = fake(script)
    with RegistryClient(registry.endpoint) as c:
        result = c.batch([{"op": "CREATE", "object": service("a")},
                          {"op": protocol.Op.DELETE, "kind": "ECSMService",
                           "namespace": "default", "name": "b"}], atomic=True)
        page = c.list("ECSMService", limit=1, continue_token="tok1")
        whole = c.list("ECSMService")
    assert result.resource_version == 9 and not result.replayed
    assert result.results[0].ok and result.results[0].result["metadata"]["name"] == "a"
    assert not result.results[1].ok and result.results[1].error is not None
    assert result.results[1].error.code == "Aborted"
    batch, paged, unpaged = registry.requests
    assert batch["atomic"] is True and batch["requestId"] and batch["writes"][1]["op"] == "DELETE"
    assert (paged["limit"], paged["continue"]) == (1, "tok1")
    assert "limit" not in unpaged and "continue" not in unpaged
    assert (page.continue_token, page.remaining, page.items) == ("tok2", 7, [{"n": 1}])
    assert whole.items == [{"n": 1}]  # the fake answers every LIST alike


@pytest.fixture
def keys(run_dir: Path) -> dict[str, Any]:
    keys_dir = run_dir / "keys"
    curve.generate(keys_dir, "server")
    _, crew_secret = curve.generate(keys_dir / "crew", "crew")
    _, stranger_secret = curve.generate(keys_dir / "stranger", "stranger")
    return {"server": curve.load_pair(keys_dir / "server.key_secret"),
            "authorized": keys_dir / "crew", "crew": crew_secret,
            "stranger": stranger_secret}


@pytest.mark.timeout(30)
def test_over_curve_an_authorized_key_is_answered_and_an_unknown_key_is_known_not_applied(
        fake: Callable[..., FakeRegistry], keys: dict[str, Any]) -> None:
    registry = fake(lambda n, doc: ok(doc.get("object", {"pid": 1})), keys["server"])
    auth = ThreadAuthenticator(registry.context)
    auth.start()
    try:
        auth.configure_curve(domain="*", location=str(keys["authorized"]))
        server_key = keys["server"].public.decode()
        crew = curve.ClientKeys.load(server_key, keys["crew"])
        with RegistryClient(registry.endpoint, timeout=1, curve=crew) as c:
            assert c.create(service("web"))["metadata"]["name"] == "web"
        stranger = curve.ClientKeys.load(server_key, keys["stranger"])
        with RegistryClient(registry.endpoint, timeout=0.3, deadline=1.0,
                            curve=stranger) as c:
            with pytest.raises(DeadlineExceeded) as info:
                c.create(service("web"))
        assert info.value.applied is False
        assert len(registry.requests) == 1
        assert keys["crew"].read_text() not in str(info.value)
    finally:
        auth.stop()


@pytest.mark.timeout(30)
def test_over_curve_on_a_slow_link_a_handshake_longer_than_the_attempt_timeout_completes(
        fake: Callable[..., FakeRegistry], keys: dict[str, Any], run_dir: Path) -> None:
    """A CURVE handshake takes about five round trips (TCP, ZMTP greeting, HELLO/WELCOME,
    INITIATE/READY): 2 s on a 0.4 s link, twice the 1 s attempt timeout."""
    registry = fake(lambda n, doc: ok({"pid": 1}), keys["server"], "tcp://127.0.0.1:*")
    port = int(registry.endpoint.rsplit(":", 1)[1])
    crew = curve.ClientKeys.load(keys["server"].public.decode(), keys["crew"])
    waits: list[int] = []
    with LinkEmulator([port], log_dir=run_dir / "test-logs", delay=0.2) as link, \
            RegistryClient(link.endpoint(), timeout=1.0, deadline=10, curve=crew,
                           on_wait=lambda attempt, elapsed: waits.append(attempt)) as c:
        started = time.monotonic()
        assert c.ping() == {"pid": 1}
        assert time.monotonic() - started > 1.0  # the handshake did outlast the timeout
    assert waits == [] and len(registry.requests) == 1


@pytest.mark.timeout(30)
def test_over_curve_a_silent_link_is_noticed_by_heartbeats_not_after_the_attempt_timeout(
        fake: Callable[..., FakeRegistry], keys: dict[str, Any], run_dir: Path) -> None:
    registry = fake(lambda n, doc: ok({"pid": 1}), keys["server"], "tcp://127.0.0.1:*")
    port = int(registry.endpoint.rsplit(":", 1)[1])
    waits: list[float] = []
    crew = curve.ClientKeys.load(keys["server"].public.decode(), keys["crew"])
    with LinkEmulator([port], log_dir=run_dir / "test-logs", delay=0.02) as link, \
            RegistryClient(link.endpoint(), timeout=20, deadline=30, curve=crew,
                           heartbeat_interval=0.2, heartbeat_timeout=0.6,
                           on_wait=lambda attempt, elapsed: waits.append(elapsed)) as c:
        c.ping()
        c.rtt.observe(10.0)  # an attempt may now wait its whole 20 s timeout
        outcome: dict[str, Any] = {}
        with link.blacked_out():
            asking = threading.Thread(target=lambda: outcome.update(c.ping()), daemon=True)
            asking.start()
            wait_until(lambda: waits, timeout=5, what="a retry while the link is silent")
        asking.join(timeout=10)
    assert outcome == {"pid": 1}
    assert waits[0] < 3.0  # the heartbeat timeout (0.6 s), not the attempt's 20 s
    assert {r["id"] for r in registry.requests[1:]} == {registry.requests[1]["id"]}


@pytest.mark.timeout(30)
def test_after_a_stall_the_answer_on_the_first_connection_is_taken_not_a_new_handshake(
        fake: Callable[..., FakeRegistry], keys: dict[str, Any], run_dir: Path) -> None:
    registry = fake(lambda n, doc: ok({"pid": 1}), keys["server"], "tcp://127.0.0.1:*")
    port = int(registry.endpoint.rsplit(":", 1)[1])
    crew = curve.ClientKeys.load(keys["server"].public.decode(), keys["crew"])
    waits: list[int] = []
    with LinkEmulator([port], log_dir=run_dir / "test-logs", delay=0.1) as link, \
            RegistryClient(link.endpoint(), timeout=5, deadline=20, curve=crew,
                           on_wait=lambda attempt, elapsed: waits.append(attempt)) as c:
        for _ in range(5):
            c.ping()  # 0.2 s round trips: the RTO comes down to about 0.3 s
        assert c.rtt.rto() < 1.0
        outcome: dict[str, Any] = {}
        with link.blacked_out():  # connections stay open; what they carry waits
            asking = threading.Thread(target=lambda: outcome.update(c.ping()), daemon=True)
            asking.start()
            wait_until(lambda: waits, timeout=10, what="a retry during the stall")
        restored = time.monotonic()
        asking.join(timeout=10)
        answered_after = time.monotonic() - restored
    assert outcome == {"pid": 1}
    # one round trip (0.2 s) on the first connection, not a new CURVE handshake (~1 s)
    assert answered_after < 0.7


@pytest.mark.timeout(30)
def test_a_curve_subscriber_receives_events_of_a_curve_publisher(
        run_dir: Path, keys: dict[str, Any]) -> None:
    context: zmq.Context[Any] = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    curve.apply_server(pub, keys["server"])
    endpoint = f"ipc://{run_dir}/events-curve.sock"
    pub.bind(endpoint)
    crew = curve.ClientKeys.load(keys["server"].public.decode(), keys["crew"])
    try:
        with Subscriber(endpoint, curve=crew) as sub:
            def heard() -> bool:
                pub.send_multipart(protocol.encode_heartbeat("e", 3))
                return sub.recv(0.1) is not None

            wait_until(heard, timeout=10, what="a heartbeat over CURVE")
    finally:
        pub.close(linger=0)
        context.term()


class ReplyEater(threading.Thread):
    """Between a client and a real registry: forwards every request; eats the reply to
    the first write (so the write is committed but its client never hears of it) and
    sets :attr:`eaten`; relays every other reply."""

    def __init__(self, front: str, back: str) -> None:
        super().__init__(daemon=True)
        self.front, self.back = front, back
        self.context: zmq.Context[Any] = zmq.Context()
        self.eaten = threading.Event()
        self.bound = threading.Event()
        self.stop = threading.Event()

    def run(self) -> None:
        front, back = self.context.socket(zmq.ROUTER), self.context.socket(zmq.DEALER)
        for sock in (front, back):
            sock.setsockopt(zmq.LINGER, 0)
        front.bind(self.front)
        back.connect(self.back)
        self.bound.set()
        peers: dict[int, bytes] = {}
        poller = zmq.Poller()
        poller.register(front, zmq.POLLIN)
        poller.register(back, zmq.POLLIN)
        try:
            while not self.stop.is_set():
                ready = dict(poller.poll(20))
                if front in ready:
                    peer, _, body = front.recv_multipart()
                    peers[msgpack.unpackb(body)["id"]] = peer
                    back.send_multipart([b"", body])
                if back in ready:
                    _, body = back.recv_multipart()
                    doc = msgpack.unpackb(body)
                    if doc.get("result", {}).get("kind") and not self.eaten.is_set():
                        self.eaten.set()
                        continue
                    front.send_multipart([peers[doc["id"]], b"", body])
        finally:
            front.close(linger=0)
            back.close(linger=0)

    def close(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        self.context.term()


@pytest.mark.timeout(60)
def test_a_write_whose_registry_is_killed_before_it_answers_returns_its_first_outcome(
        processes: Processes, registry: StartRegistry, run_dir: Path) -> None:
    """The write is committed, its reply never reaches the client, the registry is killed
    (-9) and restarted on the same store: the client's retry, with the same request id, is
    answered with the recorded outcome — applied once, one event."""
    proc, direct = registry()
    rv_before = direct.ping()["resourceVersion"]
    eater = ReplyEater(f"ipc://{run_dir}/eater.sock", registry_config(processes).registry_endpoint)
    eater.start()
    assert eater.bound.wait(5)
    outcome: dict[str, Any] = {}
    client = RegistryClient(eater.front, timeout=2, deadline=30)

    def write() -> None:
        try:
            outcome["object"] = client.create(service("web"))
            outcome["replayed"] = client.last_replayed
        except Exception as e:  # noqa: BLE001 - shown by the assertion below
            outcome["error"] = e

    try:
        client.ping()
        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        assert eater.eaten.wait(10), "the write never reached the registry"
        processes.kill(proc)
        proc.wait(timeout=10)
        _, again = registry()
        writer.join(timeout=30)
        assert outcome.get("error") is None, outcome
        assert outcome["replayed"] is True
        stored = again.get("ECSMService", "default", "web")
        assert outcome["object"] == stored
        assert [e.key for e in again.watch_since(rv_before).events] == ["default/web"]
    finally:
        client.close()
        eater.close()
