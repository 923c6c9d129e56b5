"""The values the admin API (``/_sim/``) accepts: typed, finite, within stated bounds.

Runs inside the simulator process, called by the admin handlers before anything changes.
A value that is not a JSON number (a string such as ``"nan"``, a boolean), not finite
(``NaN``, ``Infinity``: Python's JSON parser accepts both), or outside its bounds answers
HTTP 400 with one line naming the key, the bounds and what was sent — never a stored
value that kills the handler threads later (``time.sleep(NaN)`` at every API request) or
turns the simulator's answers into invalid JSON. A body must be a JSON object (or empty,
where every key has a default) and carry only known keys: a misspelt key is refused,
not silently ignored.

Bounds (documented with the routes in :mod:`.admin_routes`): latency 0..60 s, rates
0..1, start delay 0..3,600 s, CPU load 0..1,000,000 percent, memory load 0..2**50 bytes,
crash message up to 1,024 characters.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ecsm_actors.ecsm.simulator.errors import bad_request
from ecsm_actors.errors import describe_input

MAX_LATENCY = 60.0
MAX_START_DELAY = 3600.0
MAX_CPU = 1e6
MAX_MEMORY = 1 << 50
MAX_MESSAGE = 1024


def object_body(body: Any, what: str, keys: Iterable[str]) -> dict[str, Any]:
    """The body as a map of known keys (an empty body is an empty map)."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_request(f"{what}: expected a JSON object, got {describe_input(body)}")
    known = set(keys)
    unknown = sorted(str(k) for k in body if k not in known)
    if unknown:
        shown = ", ".join(describe_input(k, 40) for k in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise bad_request(f"{what}: unknown keys {shown}{more} "
                          f"(known: {', '.join(sorted(known))})")
    return body


def number(doc: dict[str, Any], key: str, low: float, high: float, *,
           default: float | None = None, required: bool = False) -> float | None:
    """``doc[key]`` as a finite float within ``low..high``; ``default`` when absent
    (or null). Raises the simulator's 400 otherwise."""
    value = doc.get(key)
    if value is None:
        if required:
            raise bad_request(f"{key}: required")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{key}: expected a number, got {describe_input(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise bad_request(f"{key}: expected a finite number, got {describe_input(value)}")
    if not low <= value <= high:
        raise bad_request(f"{key}: expected a number within {low:g}..{high:g}, "
                          f"got {describe_input(value)}")
    return float(value)


def integer(doc: dict[str, Any], key: str, low: int, high: int) -> int | None:
    """``doc[key]`` as a whole number within ``low..high`` (``400.0`` is 400), None when
    absent. Raises the simulator's 400 otherwise."""
    value = number(doc, key, low, high)
    if value is None:
        return None
    if not value.is_integer():
        raise bad_request(f"{key}: expected a whole number, got {describe_input(doc[key])}")
    return int(doc[key]) if isinstance(doc[key], int) else int(value)


def flag(doc: dict[str, Any], key: str, default: bool) -> bool:
    value = doc.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f"{key}: expected true or false, got {describe_input(value)}")
    return value


def text(doc: dict[str, Any], key: str, default: str, limit: int = MAX_MESSAGE) -> str:
    value = doc.get(key)
    if value is None:
        return default
    if not isinstance(value, str):
        raise bad_request(f"{key}: expected a string, got {describe_input(value)}")
    if len(value) > limit:
        raise bad_request(f"{key}: at most {limit} characters, got {len(value)}")
    return value
