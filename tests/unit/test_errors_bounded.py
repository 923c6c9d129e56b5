"""Errors stay small whatever the input they describe: describe_input is bounded, escaped
and never recursive; a RegistryError keeps at most 1 KiB per message and 20 causes."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ecsm_actors.errors import (
    MAX_CAUSES,
    MAX_MESSAGE,
    BadRequest,
    Cause,
    DeadlineExceeded,
    Invalid,
    Unavailable,
    clip_text,
    describe_input,
    registry_error_from_wire,
)


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value, described", [
    (None, "null"),
    (False, "boolean false"),
    (42, "integer 42"),
    (-1.5, "number -1.5"),
    ("PING", 'string "PING"'),
    ("a\nb\x1b[31m\u202ec\u200b", 'string "a\\nb\\x1b[31m\\u202ec\\u200b"'),
    ({"a": 1, "b": 2}, "map of 2 entries"),
    ([1], "list of 1 item"),
    ((), "list of 0 items"),
    (b"\x00\x01", "bytes of length 2"),
    (10 ** 5000, "an integer of about 5001 digits"),
    (nested(100_000), "list of 1 item"),
], ids=["null", "bool", "int", "float", "str", "escapes", "map", "list", "tuple", "bytes",
        "huge-int", "deep-list"])
def test_describe_input_names_the_type_and_a_short_escaped_preview(
        value: Any, described: str) -> None:
    assert describe_input(value) == described


@pytest.mark.parametrize("value", [
    "x" * (4 << 20), "\x07" * (4 << 20), "\U0001f600" * (1 << 20), 10 ** 200, -(10 ** 79),
    nested(5000), {str(i): i for i in range(100_000)},
], ids=["4MiB", "4MiB-controls", "emoji", "200-digits", "80-digits", "deep", "wide-map"])
def test_describe_input_is_bounded_and_fast_whatever_the_value(value: Any) -> None:
    start = time.perf_counter()
    text = describe_input(value)
    assert time.perf_counter() - start < 0.05
    assert len(text) <= 100 and text.isprintable()


def test_describe_input_honours_a_smaller_limit() -> None:
    assert describe_input("abcdefghij", limit=6) == 'string "abc..."'


def test_clip_text_is_idempotent() -> None:
    text = "line\n" * 1000
    assert clip_text(clip_text(text)) == clip_text(text)
    assert len(clip_text(text)) == MAX_MESSAGE


def test_an_error_keeps_one_kib_of_message_and_twenty_causes_then_counts_the_rest() -> None:
    causes = [Cause(field="f" * 5000, message=f"bad {i}") for i in range(1000)]
    error = Invalid("m" * (4 << 20), causes)
    wire = error.to_wire()
    assert len(wire["message"]) == MAX_MESSAGE and wire["message"].endswith("...")
    assert len(wire["causes"]) == MAX_CAUSES + 1
    assert all(len(c["field"]) <= MAX_MESSAGE for c in wire["causes"])
    assert wire["causes"][-1] == {"field": "", "message": "... and 980 more"}
    assert len(str(error)) < (MAX_CAUSES + 2) * 2 * MAX_MESSAGE


def test_an_error_whose_causes_already_end_with_a_count_keeps_that_count() -> None:
    causes = [Cause(field=f"f{i}", message="bad") for i in range(MAX_CAUSES)]
    causes.append(Cause(field="", message="... and 9980 more"))
    assert Invalid("invalid", causes).causes == tuple(causes)


def test_a_message_is_one_line_on_the_terminal() -> None:
    assert str(BadRequest("bad\nrequest\x1b[2J")) == "bad\\nrequest\\x1b[2J"


def test_an_error_rebuilt_from_a_hostile_reply_is_bounded() -> None:
    error = registry_error_from_wire({
        "code": {"x": 1}, "message": nested(5000),
        "causes": [{"field": nested(10), "message": "y" * (1 << 20)}] * 10_000,
    })
    assert error.code == "Internal" and error.message == "list of 1 item"
    assert len(error.causes) == MAX_CAUSES + 1
    assert error.causes[0].field == "list of 1 item"
    assert error.causes[-1].message == "... and 9980 more"


def test_a_write_of_unknown_outcome_crosses_the_wire_as_such_and_a_refusal_does_not() -> None:
    unknown = registry_error_from_wire(DeadlineExceeded("etcd answer lost").to_wire())
    assert isinstance(unknown, DeadlineExceeded) and unknown.applied is None
    assert unknown.code == "Unavailable"
    refused = registry_error_from_wire(Unavailable("quorum lost").to_wire())
    assert type(refused) is Unavailable
