"""Scalar schema nodes: strings, enums, numbers, booleans, quantities, int-or-percent.

Owns the leaf checks of the strict walker (``api.schema``): each node type-checks one
value, normalises it where the wire has one canonical form (int → float for ``Float``,
int → str for ``Quantity``) and records a cause at the value's path when it is wrong.
Runs in every process. Booleans are never accepted as numbers. Every node may carry an
upper bound (``maximum``, ``max_len``, ``max_int``/``max_percent``, ``Quantity.maximum``);
a bound that the configuration may raise is set through :mod:`ecsm_actors.api.limits`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from ecsm_actors.api import echo
from ecsm_actors.api.quantity import MIB, format_bytes, normalize_quantity, parse_quantity
from ecsm_actors.api.schema import INVALID, Check, Node, Walk, describe
from ecsm_actors.errors import Invalid

_PERCENT = re.compile(r"^(\d+)%$")
#: Digits of a percentage read as a number at all (int() of thousands of digits raises).
PERCENT_MAX_DIGITS = 9
INT32_MAX = 2**31 - 1


def _checked(value: Any, path: str, w: Walk, check: Check | None) -> Any:
    message = check(value) if check else None
    if message:
        w.error(path, message)
        return INVALID
    return value


class Str(Node):
    expected = "string"

    def __init__(self, *, check: Check | None = None, nonempty: bool = False,
                 max_len: int | None = None) -> None:
        self.check = check
        self.nonempty = nonempty
        self.max_len = max_len

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if not isinstance(value, str):
            return self.wrong_type(value, path, w)
        if self.max_len is not None and len(value) > self.max_len:
            w.error(path, f"must be no more than {self.max_len} characters, got {len(value)}")
            return INVALID
        if self.nonempty and not value:
            w.error(path, "must not be empty")
            return INVALID
        return _checked(value, path, w, self.check)


class Enum(Node):
    def __init__(self, values: Iterable[str]) -> None:
        self.values = tuple(str(v) for v in values)
        self.expected = "one of " + ", ".join(f'"{v}"' for v in self.values)

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if not isinstance(value, str) or value not in self.values:
            supported = ", ".join(f'"{v}"' for v in self.values)
            w.error(path, f"unsupported value {describe(value)}; supported values: {supported}")
            return INVALID
        return value


class Int(Node):
    expected = "integer"

    def __init__(self, *, minimum: int | None = None, maximum: int | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return self.wrong_type(value, path, w)
        return _checked(value, path, w, lambda v: bounds_message(v, self.minimum, self.maximum))


class Float(Node):
    """A finite number; integers are accepted and normalised to ``float``."""

    expected = "number"

    def __init__(self, *, minimum: float | None = None, maximum: float | None = None) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self.wrong_type(value, path, w)
        if not math.isfinite(value):
            w.error(path, "must be a finite number")
            return INVALID
        value = float(value)
        return _checked(value, path, w, lambda v: bounds_message(v, self.minimum, self.maximum))


class Number(Float):
    """A finite integer or float, kept as given (no normalisation)."""

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        out = super().walk(value, path, w)
        return value if out is not INVALID else INVALID


def bounds_message(value: float, minimum: float | None, maximum: float | None) -> str | None:
    if minimum is not None and value < minimum:
        return f"must be greater than or equal to {minimum}, got {_number(value)}"
    if maximum is not None and value > maximum:
        return f"must be less than or equal to {maximum}, got {_number(value)}"
    return None


def _number(value: float) -> str:
    return echo.integer_text(value) if isinstance(value, int) else str(value)


class Bool(Node):
    expected = "boolean"

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        return value if isinstance(value, bool) else self.wrong_type(value, path, w)


class Quantity(Node):
    """A resource quantity of at least 1Mi (ECSM limits are whole MiB) and at most
    ``maximum`` bytes; wire form str."""

    expected = 'quantity (e.g. "512Mi")'

    def __init__(self, *, maximum: int | None = None) -> None:
        self.maximum = maximum

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        try:
            text = normalize_quantity(value)
        except Invalid as e:
            w.error(path, f"{e.causes[0].message}, got {describe(value)}")
            return INVALID
        size = parse_quantity(text)
        if size < MIB:
            w.error(path, f'must be at least 1Mi (ECSM limits are whole MiB), got "{text}"')
            return INVALID
        if self.maximum is not None and size > self.maximum:
            w.error(path, f'must be less than or equal to {format_bytes(self.maximum)}, '
                          f'got "{echo.clip(text)}"')
            return INVALID
        return text


class IntOrPercent(Node):
    """An integer in 0..``max_int`` or a percentage string ``"25%"`` of at most
    ``max_percent`` (Kubernetes IntOrString)."""

    expected = 'integer or percentage (e.g. 1 or "25%")'

    def __init__(self, *, max_percent: int | None = None, max_int: int | None = None) -> None:
        self.max_percent = max_percent
        self.max_int = max_int

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            message = bounds_message(value, 0, self.max_int)
            if message:
                w.error(path, message)
                return INVALID
            return value
        match = _PERCENT.match(value) if isinstance(value, str) else None
        if not match:
            return self.wrong_type(value, path, w)
        if self.max_percent is not None and (len(match[1]) > PERCENT_MAX_DIGITS
                                             or int(match[1]) > self.max_percent):
            w.error(path, f"must not be greater than {self.max_percent}%, "
                          f"got {describe(value)}")
            return INVALID
        return value
