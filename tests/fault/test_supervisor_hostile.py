"""The supervisor against hostile peers on its own sockets: every control request is
answered (the REP socket never wedges), garbage liveness reports are dropped, and neither
touches a child.

Real processes: a supervisor over the test worker (see test_supervisor.py), raw zmq
sockets playing the hostile peer, and the real :class:`SupervisorClient` proving that
``ps`` still answers afterwards."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, ControlError, RegistryError
from ecsm_actors.protocol import ControlOp
from tests.fault.test_supervisor import Daemon, beating
from tests.fuzz_harness import nested_list, with_raw
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(60)


#: Control requests that each once raised in decode or in the handler (no reply: deaf).
HOSTILE_REQUESTS = {
    "op nested 1,000 deep": with_raw({"v": 1, "id": 1}, "op", nested_list(1000)),
    "id nested 1,000 deep": with_raw({"v": 1, "op": "ps"}, "id", nested_list(1000)),
    "name nested 900 deep": with_raw({"v": 1, "id": 1, "op": "stop"}, "name",
                                     nested_list(900)),
    "a superscript digit for a signal": protocol.encode_control(
        ControlOp.KILL, 1, name="steady", signal="³"),
    "a 5,000-digit signal": protocol.encode_control(
        ControlOp.KILL, 1, name="steady", signal="9" * 5000),
    "2 MiB of garbage": b"\xc1" * (2 << 20),
    "an unknown version": msgpack.packb({"v": 99, "id": 1, "op": "ps"}),
    "an empty frame": b"",
}


@pytest.fixture
def context() -> Iterator[zmq.Context[Any]]:
    ctx: zmq.Context[Any] = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def request(ctx: zmq.Context[Any], endpoint: str, *frames: bytes) -> bytes | None:
    """Send one message on a fresh REQ socket; its reply, or None after 5 s."""
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(list(frames))
        return sock.recv() if sock.poll(5000) else None
    finally:
        sock.close(linger=0)


def dropped(ctx: zmq.Context[Any], endpoint: str, frame: bytes) -> bool:
    """Send ``frame`` on a fresh REQ socket: True once the supervisor closed the
    connection (within 5 s) without a reply."""
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    try:
        sock.connect(endpoint)
        sock.send(frame)
        closed = bool(monitor.poll(5000)) and (
            recv_monitor_message(monitor)["event"] == zmq.EVENT_DISCONNECTED)
        return closed and not sock.poll(100)
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)


def refusal(reply: bytes | None) -> RegistryError:
    assert reply is not None, "no reply: the supervisor went deaf"
    with pytest.raises(RegistryError) as caught:
        protocol.decode_reply(reply)
    return caught.value


def pids(d: Daemon) -> dict[str, tuple[int, int]]:
    return {r["name"]: (r["pid"], r["restarts"]) for r in d.client.ps()}


def test_every_hostile_control_request_is_answered_and_ps_still_works(
        processes: Processes, context: zmq.Context[Any]) -> None:
    d = Daemon(processes, [beating("steady")]).start()
    endpoint = d.client.endpoint
    before = pids(d)
    for what, frame in HOSTILE_REQUESTS.items():
        reply = request(context, endpoint, frame)
        assert isinstance(refusal(reply), BadRequest), what
        assert reply is not None and len(reply) < 2048, what
        assert pids(d) == before, what  # the real client is answered; no child touched

    two = request(context, endpoint, protocol.encode_control(ControlOp.PS, 1), b"extra")
    assert refusal(two).message == "a control request is one frame, got 2"

    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(endpoint)
    dealer.send(b"no empty delimiter: REP drops it")  # a malformed envelope
    dealer.send_multipart([b"", protocol.encode_control(ControlOp.PS, 2), b"", b"x"])
    assert dealer.poll(5000), "no reply to a multi-frame body"
    assert dealer.recv_multipart()[0] == b""
    dealer.close(linger=0)

    assert dropped(context, endpoint, b"\x00" * (8 << 20))  # over MAXMSGSIZE: cut off
    assert pids(d) == before
    status = d.client.status()
    assert status["ready"] and status["refused"]["badRequests"] >= len(HOSTILE_REQUESTS) + 2
    assert "unexpected error" not in d.log()


def test_a_verb_failing_on_the_disk_is_answered_internal_and_the_supervisor_goes_on(
        processes: Processes) -> None:
    d = Daemon(processes, [beating("steady"), beating("other")]).start()
    (d.run_dir / "supervisor-held.json").mkdir()  # the held children can no longer be saved
    with pytest.raises(ControlError, match=r"stop failed: IsADirectoryError"):
        d.client.stop("other")
    assert d.row("steady")["state"] == "RUNNING"
    assert d.client.status()["refused"]["internalErrors"] == 1


def test_garbage_liveness_reports_are_dropped_without_touching_a_child(
        processes: Processes, context: zmq.Context[Any]) -> None:
    d = Daemon(processes, [beating("steady", reconcile_deadline=30)]).start()
    row = d.row("steady")
    pid = row["pid"]

    def report(**overrides: Any) -> bytes:
        doc: dict[str, Any] = {"v": 1, "name": "steady", "pid": pid, "ts": 1.7e9,
                               "queueDepth": 0, "oldestInflightAge": 0.0,
                               "lastCompleted": 0.0, "stats": {"synced": True}}
        doc.update(overrides)
        return msgpack.packb(doc)

    deep_stats = b"\x81\xa1a" * 98 + b"\x01"  # {"a": {"a": ... 1}}: within the protocol's
    hostile = [                                # 100 levels, too deep for a stats reply
        [report(ts=math.nan)], [report(stats={"x": math.nan})],
        [with_raw({"v": 1, "name": "steady", "pid": pid, "ts": 1.7e9}, "stats", deep_stats)],
        [report(pid=-pid)], [report(queueDepth=-1)], [report(ts=nested_list(1000))],
        [with_raw({"v": 1, "pid": pid, "ts": 1.7e9}, "name", nested_list(1000))],
        [report(), b"a second frame"], [b"\xc1" * (2 << 20)], [report(v=2)],
        [report(oldestInflightAge=math.inf)],  # the watchdog would kill a healthy child
    ]
    push = context.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(d.client.cfg.heartbeat_endpoint)
    for frames in hostile:
        push.send_multipart(frames)
    push.send(report(name="nobody"))  # well-formed, for no child: ignored as before

    def dropped_or_harmed() -> bool:
        status = d.client.status()
        dropped = status.get("refused", {}).get("badReports", 0) >= len(hostile)
        return dropped or d.row("steady")["restarts"] > 0

    wait_until(dropped_or_harmed, timeout=10, what="every hostile report dropped")
    row = d.row("steady")
    assert (row["pid"], row["restarts"], row["state"]) == (pid, 0, "RUNNING")
    stats = d.client.stats("steady")["steady"]["liveness"]
    json.dumps(stats, allow_nan=False)  # `stats -o json` stays valid JSON
    assert stats["stats"]["synced"] is True and stats["oldestInflightAge"] == 0.0
    push.close(linger=0)
