"""Hostile input to the supervisor: every control request gets one bounded reply, and a
liveness report that makes no sense is dropped before it touches a child (no sockets)."""

from __future__ import annotations

import logging
import math
import random
from typing import Any

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest, Internal, RegistryError
from ecsm_actors.protocol import ControlOp, Liveness
from ecsm_actors.supervisor import control, reports
from ecsm_actors.failures import LOGGED_FAILURES, FailureLog

#: A reply to any hostile request stays this small (messages are clipped to 1 KiB).
SMALL = 2048


class Target:
    """A supervisor whose verbs do what the test says."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result = result
        self.error = error
        self.calls: list[str] = []

    def _do(self, verb: str) -> Any:
        self.calls.append(verb)
        if self.error is not None:
            raise self.error
        return self.result if self.result is not None else {"name": "registry"}

    def ps(self) -> list[dict[str, Any]]:
        return self._do("ps")  # type: ignore[no-any-return]

    def kill_child(self, name: str, signum: int) -> dict[str, Any]:
        return self._do(f"kill {name} {signum}")  # type: ignore[no-any-return]

    def restart_child(self, name: str) -> dict[str, Any]:
        return self._do(f"restart {name}")  # type: ignore[no-any-return]

    def stop_child(self, name: str) -> dict[str, Any]:
        return self._do(f"stop {name}")  # type: ignore[no-any-return]

    def start_child(self, name: str) -> dict[str, Any]:
        return self._do(f"start {name}")  # type: ignore[no-any-return]

    def stats(self, name: str | None) -> dict[str, Any]:
        return self._do(f"stats {name}")  # type: ignore[no-any-return]

    def status(self) -> dict[str, Any]:
        return self._do("status")  # type: ignore[no-any-return]

    def shutdown(self) -> dict[str, Any]:
        return self._do("shutdown")  # type: ignore[no-any-return]


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def answer(frame: bytes, target: Target | None = None, failures: FailureLog | None = None,
           frames: int = 1) -> bytes:
    reply = control.handle_message(frame, frames, target or Target(),
                                   failures=failures or FailureLog(logging.getLogger("t")))
    assert isinstance(reply, bytes)
    return reply


def refusal(reply: bytes) -> RegistryError:
    with pytest.raises(RegistryError) as caught:
        protocol.decode_reply(reply)
    return caught.value


@pytest.mark.parametrize("field", ["v", "id", "op", "name", "signal"])
def test_a_request_with_a_field_nested_a_thousand_deep_gets_a_short_bad_request(
        field: str) -> None:
    doc: dict[str, Any] = {"v": 1, "id": 7, "op": "kill", "name": "registry"}
    doc[field] = nested(1000)
    reply = answer(msgpack.packb(doc))
    assert isinstance(refusal(reply), BadRequest)
    assert len(reply) < SMALL


@pytest.mark.parametrize("signal", ["³", "٩", "9" * 5000, "KILL" * 1000, 1 << 63, -1, 1.5])
def test_a_signal_no_one_can_send_is_a_bad_request_not_an_exception(signal: Any) -> None:
    target = Target()
    reply = answer(protocol.encode_control(ControlOp.KILL, 7, name="registry", signal=signal),
                   target)
    error = refusal(reply)
    assert isinstance(error, BadRequest) and "unknown signal" in error.message
    assert len(reply) < SMALL
    assert target.calls == []


def test_a_verb_that_fails_unexpectedly_is_answered_internal_naming_the_op(
        caplog: pytest.LogCaptureFixture) -> None:
    target = Target(error=OSError(28, "No space left on device"))
    with caplog.at_level(logging.ERROR):
        reply = answer(protocol.encode_control(ControlOp.STOP, 7, name="registry"), target)
    error = refusal(reply)
    assert isinstance(error, Internal)
    assert error.message == "stop failed: OSError: [Errno 28] No space left on device"
    assert protocol.unpack(reply)["id"] == 7
    assert "internal error serving control op stop" in caplog.text  # with its traceback
    assert "Traceback" in caplog.text


@pytest.mark.parametrize("result", [{"n": 1 << 70}, {"x": object()}])
def test_a_result_that_cannot_be_encoded_is_answered_internal(result: Any) -> None:
    error = refusal(answer(protocol.encode_control(ControlOp.PS, 7), Target(result=result)))
    assert isinstance(error, Internal) and error.message.startswith("ps failed:")


def test_a_request_of_several_frames_is_a_bad_request() -> None:
    target = Target()
    error = refusal(answer(protocol.encode_control(ControlOp.PS, 7), target, frames=2))
    assert isinstance(error, BadRequest)
    assert error.message == "a control request is one frame, got 2"
    assert target.calls == []


@pytest.mark.parametrize("frame", [
    b"", b"\xc1", b"\x00" * (2 << 20), msgpack.packb({"v": 2, "id": 1, "op": "ps"}),
    msgpack.packb({"v": 1, "id": "x" * 900_000, "op": "reboot"}),
    msgpack.packb({"v": 1, "id": True, "op": "ps"}), msgpack.packb([1, 2, 3]),
    msgpack.packb({"v": 1, "id": 1, "op": "stop", "name": "n" * 10_000}),
])
def test_garbage_gets_a_short_bad_request_and_never_reaches_a_verb(frame: bytes) -> None:
    target = Target()
    reply = answer(frame, target)
    assert isinstance(refusal(reply), BadRequest)
    assert len(reply) < SMALL
    assert target.calls == []


def test_a_stream_of_bad_requests_is_counted_and_logged_rate_limited(
        caplog: pytest.LogCaptureFixture) -> None:
    failures = FailureLog(logging.getLogger("ecsm_actors.supervisor.control"))
    with caplog.at_level(logging.WARNING):
        for _ in range(500):
            answer(b"\xc1", failures=failures)
    assert failures.snapshot() == {"badRequests": 500}
    assert len(caplog.records) == LOGGED_FAILURES


def test_random_frames_always_get_exactly_one_decodable_reply() -> None:
    rng = random.Random(18)
    ops = [str(op) for op in ControlOp] + ["reboot", "", 3, None, [], {}]
    values: list[Any] = [None, True, -1, 0, 1 << 63, 1.5, math.nan, math.inf, "", "KILL",
                         "registry", "³", b"\xff", [], {}, nested(50), {"a": nested(20)}]
    target = Target()
    for _ in range(3000):
        doc = {"v": rng.choice([1, 1, 1, 0, "1", None]), "id": rng.choice(values + [1, 2]),
               "op": rng.choice(ops)}
        for key in rng.sample(["name", "signal", "extra"], rng.randint(0, 3)):
            doc[key] = rng.choice(values)
        frame = msgpack.packb(doc)
        if rng.random() < 0.2:
            cut = rng.randrange(len(frame))
            frame = frame[:cut] + bytes([rng.randrange(256)]) + frame[cut + 1:]
        reply = answer(frame, target)
        assert len(reply) < SMALL
        try:
            protocol.decode_reply(reply)
        except RegistryError:
            pass


# -- liveness reports ------------------------------------------------------------------


def report_frame(**overrides: Any) -> bytes:
    doc: dict[str, Any] = {"v": 1, "name": "registry", "pid": 4242, "ts": 1.7e9,
                           "queueDepth": 0, "oldestInflightAge": 0.0, "lastCompleted": 0.0,
                           "stats": {"synced": True}}
    doc.update(overrides)
    return msgpack.packb(doc)


def test_a_real_report_is_accepted_as_sent() -> None:
    sent = Liveness(name="service-controller", pid=77, ts=1.7e9, queue_depth=3,
                    oldest_inflight_age=0.5, last_completed=1.7e9 - 1,
                    stats={"synced": True, "informer": {"drift": 0}, "retry_budget": {}})
    assert reports.accept(protocol.encode_liveness(sent)) == sent


@pytest.mark.parametrize("overrides", [
    {"ts": math.nan}, {"ts": math.inf}, {"ts": -1.0}, {"oldestInflightAge": math.inf},
    {"oldestInflightAge": math.nan}, {"oldestInflightAge": -5.0},
    {"oldestInflightAge": 1e300}, {"lastCompleted": -math.inf},
    {"pid": -1}, {"pid": 0}, {"pid": 1 << 40}, {"queueDepth": -3}, {"queueDepth": 1 << 62},
    {"name": ""}, {"name": "regis\ntry"}, {"name": "x" * 300}, {"name": nested(1000)},
    {"ts": nested(1000)}, {"stats": nested(5)}, {"stats": {"a": nested(30)}},
    {"stats": {"a": [1.0, math.nan]}}, {"stats": {"blob": "x" * (100 << 10)}},
    {"v": 2}, {"pid": "4242"}, {"ts": True},
])
def test_a_report_that_makes_no_sense_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(BadRequest):
        reports.accept(report_frame(**overrides))


@pytest.mark.parametrize("frame", [b"", b"\xc1", b"\x00" * (2 << 20), msgpack.packb([1])])
def test_a_frame_that_is_no_report_is_refused(frame: bytes) -> None:
    with pytest.raises(BadRequest):
        reports.accept(frame)
