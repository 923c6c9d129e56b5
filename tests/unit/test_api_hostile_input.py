"""Hostile objects cost validation bounded time and get a bounded answer: at most 20 causes
and a count of the rest, input quoted clipped and escaped, and an ``Invalid`` (never
another exception) whatever the object holds."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ecsm_actors.api import prepare
from ecsm_actors.api.schema import MAX_CAUSES
from ecsm_actors.errors import Invalid
from tests.registry_samples import service

MIB4 = 4 << 20


def refused(obj: Any) -> Invalid:
    with pytest.raises(Invalid) as info:
        prepare(obj)
    return info.value


def test_an_object_with_250000_unknown_fields_is_refused_quickly_with_a_short_answer() -> None:
    obj = service("web")
    obj["spec"].update({f"unknownfield{i:06d}": i for i in range(250_000)})
    started = time.perf_counter()
    error = refused(obj)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, f"validation took {elapsed:.2f}s"
    assert len(str(error)) < 8 * 1024
    assert len(error.causes) == MAX_CAUSES + 1
    assert error.causes[0].field == "spec.unknownfield000000"
    assert error.causes[-1].message == f"... and {250_000 - MAX_CAUSES} more"


def test_only_the_first_unknown_fields_get_a_suggestion() -> None:
    obj = service("web")
    obj["spec"]["template"].update({f"imagePullPolicy{i}": "x" for i in range(10)})
    messages = [c.message for c in refused(obj).causes]
    assert sum("did you mean" in m for m in messages) == 5
    assert len(messages) == 10


@pytest.mark.parametrize("where", ["key", "enum value", "kind", "name", "label key"])
def test_a_4_mib_input_is_quoted_in_at_most_80_characters(where: str) -> None:
    huge = "A" * MIB4
    obj = service("web")
    if where == "key":
        obj["spec"][huge] = 1
    elif where == "enum value":
        obj["spec"]["template"]["imagePullPolicy"] = huge
    elif where == "kind":
        obj["kind"] = huge
    elif where == "name":
        obj["metadata"]["name"] = huge
    else:
        obj["metadata"]["labels"] = {huge: "x"}
    text = str(refused(obj))
    assert len(text) < 1024, text[:300]
    assert "A" * 77 + "..." in text and "A" * 81 not in text


def test_control_characters_in_quoted_input_are_escaped() -> None:
    obj = service("web")
    obj["spec"]["\x1b[2J\u202eevil\n"] = 1
    obj["spec"]["template"]["imagePullPolicy"] = "\x07Always"
    text = str(refused(obj))
    assert 'spec.\\x1b[2J\\u202eevil\\n: unknown field "\\x1b[2J\\u202eevil\\n"' in text
    assert 'unsupported value string "\\x07Always"' in text
    assert not any(c in text for c in "\x1b\x07\u202e\n")


@pytest.mark.parametrize(("path", "value"), [
    ("replicas", 10**5000),                      # str() of it raises ValueError
    ("maxUnavailable", "1" * 5000 + "%"),        # int() of the digits raises ValueError
    ("memory", "1e" + "9" * 5000),               # int() of the exponent raises ValueError
    ("memory", 10**5000),
    ("labels", {10**5000: "x"}),                 # sorting keys by str() raises ValueError
    ("status", "deep"),                          # copying raises RecursionError
], ids=["huge-int", "huge-percent", "huge-exponent", "huge-int-quantity", "huge-int-key",
        "deep-spec"])
def test_absurd_numbers_and_nesting_are_invalid_never_an_exception(
        path: str, value: Any) -> None:
    obj = service("web")
    if path == "replicas":
        obj["spec"]["deploymentStrategy"]["replicas"] = value
    elif path == "maxUnavailable":
        obj["spec"]["rollout"] = {"maxUnavailable": value}
    elif path == "memory":
        obj["spec"]["template"]["resources"] = {"limits": {"memory": value}}
    elif path == "labels":
        obj["metadata"]["labels"] = value
    else:
        deep: Any = {}
        for _ in range(5000):
            deep = {"x": deep}
        obj = {**obj, "kind": "Unknown", "spec": deep}
    assert len(str(refused(obj))) < 1024
