"""The event stream's wire (``protocol.frame_event`` / ``split_event``, the subscription
frame): an event's two parts come back as they were sent, and a subscription that is not
one is refused in one line."""

from __future__ import annotations

import msgpack
import pytest

from ecsm_actors import protocol
from ecsm_actors.errors import BadRequest

pytestmark = pytest.mark.timeout(10)


def test_an_event_frame_holds_its_topic_and_body_and_splits_back_into_them() -> None:
    body = protocol.pack({"v": 1, "seq": 7})
    frame = protocol.frame_event(b"ECSMService.ADDED", body)
    (size,) = protocol.frame_size(frame)
    assert size == len(frame) - protocol.FRAME_HEAD_BYTES
    assert protocol.split_event(frame[protocol.FRAME_HEAD_BYTES:]) == [
        b"ECSMService.ADDED", body]
    assert protocol.split_event(protocol.frame_event(b"", b"")[4:]) == [b"", b""]


def test_an_event_frame_whose_topic_runs_past_it_is_refused() -> None:
    with pytest.raises(BadRequest, match="topic of 100 bytes"):
        protocol.split_event(protocol.frame_head(100) + b"short")
    with pytest.raises(BadRequest, match="no topic length"):
        protocol.split_event(b"\x00")


def test_a_subscription_names_its_topic_prefixes_and_high_water_mark() -> None:
    frame = protocol.encode_subscription([b"ECSMService.", protocol.HEARTBEAT_TOPIC], 500)
    assert protocol.decode_subscription(frame) == (
        (b"ECSMService.", protocol.HEARTBEAT_TOPIC), 500)


@pytest.mark.parametrize("doc", [
    {"topics": "ECSMService.", "hwm": 1},
    {"topics": ["ECSMService."], "hwm": 1},  # a str, not bytes
    {"topics": [b"x"] * (protocol.MAX_SUBSCRIPTION_TOPICS + 1), "hwm": 1},
    {"topics": [b""], "hwm": 0},
    {"topics": [b""], "hwm": True},
    {"topics": [b""]},
])
def test_a_subscription_that_is_not_one_is_refused_in_one_line(doc: dict) -> None:
    with pytest.raises(BadRequest) as refused:
        protocol.decode_subscription(msgpack.packb(doc))
    assert "\n" not in str(refused.value)
