"""Rolling-update arithmetic: maxSurge / maxUnavailable as Kubernetes resolves them.

Runs inside the service-controller process (and ``ecsm-cli rollout``); pure.

Invariants: an int-or-percent is resolved against the desired replica count, surge
rounding up and unavailable rounding down; when both resolve to 0, maxUnavailable is 1
(otherwise no rollout could ever make progress); maxUnavailable never exceeds the desired
count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ecsm_actors.errors import TerminalError

#: The api's defaults, used when a (pre-defaulting) object lacks them.
DEFAULT_MAX_SURGE = 1
DEFAULT_MAX_UNAVAILABLE = 0
DEFAULT_HISTORY_LIMIT = 2


@dataclass(frozen=True, kw_only=True)
class RolloutBounds:
    """Resolved bounds of one rollout."""

    max_surge: int
    max_unavailable: int
    history_limit: int


def int_or_percent(value: Any, total: int, *, round_up: bool, field: str) -> int:
    """``3`` → 3; ``"25%"`` → 25% of ``total`` rounded up or down."""
    if isinstance(value, bool):
        raise TerminalError(f"{field}: expected an int or a percent, got {value!r}",
                            reason="InvalidSpec")
    if isinstance(value, int):
        if value < 0:
            raise TerminalError(f"{field}: cannot be negative", reason="InvalidSpec")
        return value
    text = str(value).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if pct < 0:
                raise ValueError("negative")
            exact = pct * total / 100.0
            # round the exact product, not a float approximation of it
            return math.ceil(round(exact, 9)) if round_up else math.floor(round(exact, 9))
        number = int(text)
        if number < 0:
            raise ValueError("negative")
        return number
    except ValueError as e:
        raise TerminalError(f"{field}: expected an int or a percent, got {value!r}",
                            reason="InvalidSpec") from e


def resolve(rollout: dict[str, Any] | None, desired: int) -> RolloutBounds:
    """Bounds of ``spec.rollout`` for ``desired`` replicas (Kubernetes fenceposts)."""
    rollout = rollout or {}
    surge = int_or_percent(rollout.get("maxSurge", DEFAULT_MAX_SURGE), desired,
                           round_up=True, field="spec.rollout.maxSurge")
    unavailable = int_or_percent(rollout.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE),
                                 desired, round_up=False, field="spec.rollout.maxUnavailable")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    unavailable = min(unavailable, desired)
    limit = rollout.get("revisionHistoryLimit", DEFAULT_HISTORY_LIMIT)
    history = DEFAULT_HISTORY_LIMIT if limit is None else max(0, int(limit))
    return RolloutBounds(max_surge=surge, max_unavailable=unavailable, history_limit=history)
