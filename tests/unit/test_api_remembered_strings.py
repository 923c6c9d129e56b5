"""The strings validation remembers as valid stay few and short, whatever a client sends.

The compiled fast path keeps strings a costly syntax check found valid (namespaces, label
keys, images, timestamps repeat from write to write). A valid string can be long: an
RFC 3339 timestamp may carry any number of fraction digits, and a request may be megabytes.
Remembering such strings would let a client make the registry hold hundreds of megabytes
(256 strings a check, each as long as a request), so only short ones are remembered.
"""

from __future__ import annotations

import pytest

from ecsm_actors.api import prepare_status
from ecsm_actors.api.compiled import _known_valid


def status_with_transition_time(when: str) -> dict:
    return {"conditions": [{"type": "Available", "status": "True",
                            "lastTransitionTime": when}]}


def remembered_characters() -> int:
    return sum(len(text) for known in _known_valid.values() for text in known)


@pytest.mark.timeout(20)
def test_long_valid_strings_are_checked_each_time_and_never_remembered() -> None:
    before = remembered_characters()
    for i in range(20):
        # Valid: RFC 3339 allows any number of digits in the fraction of a second.
        when = f"2026-11-26T08:51:49.{i}{'1' * 100_000}Z"
        for _ in range(2):  # the second time would answer from memory
            got = prepare_status("ECSMService", status_with_transition_time(when))
            assert got["conditions"][0]["lastTransitionTime"] == when
    assert remembered_characters() - before < 100_000


def test_a_short_valid_string_is_still_remembered() -> None:
    when = "2026-11-26T08:51:49.123Z"
    prepare_status("ECSMService", status_with_transition_time(when))
    assert any(when in known for known in _known_valid.values())
