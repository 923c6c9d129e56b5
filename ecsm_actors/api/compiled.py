"""The fast path of the strict walker: schema nodes compiled into plain closures.

Owns :func:`compiled` (a node → its :data:`FastWalk`) and :class:`Fallback`. Runs in every
process; the registry's :func:`~ecsm_actors.api.prepare` and
:func:`~ecsm_actors.api.prepare_status` take it on every write, where validation is the
costliest step. The generic walker (:meth:`ecsm_actors.api.schema.Node.walk`) builds a
field path for every value and a cause for every problem; a valid object needs neither.

Invariant (checked by ``tests/unit/test_api_compiled.py``): for any input, a compiled
walker either returns exactly what ``node.walk`` returns when that walk records no cause,
or raises :class:`Fallback` — on the first problem, and on any input of an unusual type
(a ``Mapping`` that is not a ``dict``, a tuple, a ``str`` subclass such as a ``StrEnum``
member) rather than guess. The caller then walks again with the generic walker, so every
error message and field path comes from one place, :mod:`ecsm_actors.api.schema`.
Cross-field rules (``Obj.post``) and context-dependent defaults run unchanged, on a
:class:`~ecsm_actors.api.schema.Walk` that has recorded nothing: a rule that records a
cause also means fall back. No path is built on this path, so rules get ``""`` as theirs.
Defaults are walked without the generic walker's deep copy: no walker mutates its input,
and every container a walker returns is new.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from ecsm_actors.api.quantity import MIB, normalize_quantity, parse_quantity
from ecsm_actors.api.scalars import (
    _PERCENT,
    Bool,
    Enum,
    Float,
    Int,
    IntOrPercent,
    Number,
    Quantity,
    Str,
)
from ecsm_actors.api.schema import INVALID, MISSING, ListOf, MapOf, Node, Obj, Walk
from ecsm_actors.errors import Invalid

FastWalk = Callable[[Any, Walk], Any]
"""A compiled node: ``(value, walk) -> normalised value``; raises :class:`Fallback`."""

#: Quantities are few and repeat; strings longer than this are not remembered.
_QUANTITY_CACHE_LEN = 32


class Fallback(Exception):
    """The fast path declines this input: walk it with the generic walker instead."""


_compiled: dict[int, tuple[Node, FastWalk]] = {}


def compiled(node: Node) -> FastWalk:
    """The compiled walker of ``node`` (built once per node)."""
    entry = _compiled.get(id(node))
    if entry is None or entry[0] is not node:
        entry = (node, _compile(node))
        _compiled[id(node)] = entry
    return entry[1]


def _compile(node: Node) -> FastWalk:
    # Exact types: a subclass may walk differently, so it gets the generic adapter.
    for kind, build in _BUILDERS:
        if type(node) is kind:
            return build(node)
    return _generic(node)


def _generic(node: Node) -> FastWalk:
    """Any other node (``Raw``, future ones): its own walk, declining on any cause."""

    def walk(value: Any, w: Walk) -> Any:
        before = len(w.causes)
        out = node.walk(value, "", w)
        if out is INVALID or len(w.causes) != before:
            raise Fallback
        return out

    return walk


def _obj(node: Obj) -> FastWalk:
    props = node.props
    plan = tuple(
        (key, compiled(p.node), p.required, p.default, callable(p.default),
         p.default is MISSING and not p.required)
        for key, p in props.items()
    )
    post = node.post

    def walk(value: Any, w: Walk) -> Any:
        if type(value) is not dict:
            raise Fallback
        for key in value:
            if key not in props:
                raise Fallback
        out: dict[str, Any] = {}
        for key, sub, required, default, dynamic, omit_empty in plan:
            raw = value.get(key)
            if raw is None:
                if required:
                    raise Fallback
                if default is MISSING:
                    continue
                raw = default(w) if dynamic else default
                if raw is None:
                    continue
            item = sub(raw, w)
            if omit_empty and not item and isinstance(item, dict | list):
                continue
            out[key] = item
        if post is not None:
            post(out, "", w)
            if w.causes:
                raise Fallback
        return out

    return walk


def _list(node: ListOf) -> FastWalk:
    sub, unique_by, min_items = compiled(node.item), node.unique_by, node.min_items

    def walk(value: Any, w: Walk) -> Any:
        if type(value) is not list or len(value) < min_items:
            raise Fallback
        out = [sub(item, w) for item in value]
        if unique_by is not None:
            seen: set[Any] = set()
            for item in out:
                key = unique_by(item)
                if key is not None and key in seen:
                    raise Fallback
                seen.add(key)
        return out

    return walk


def _map(node: MapOf) -> FastWalk:
    sub, key_check = compiled(node.value), node.key_check

    def walk(value: Any, w: Walk) -> Any:
        if type(value) is not dict:
            raise Fallback
        out: dict[str, Any] = {}
        for key in sorted(value, key=str):
            if type(key) is not str or (key_check is not None and key_check(key)):
                raise Fallback
            out[key] = sub(value[key], w)
        return out

    return walk


def _str(node: Str) -> FastWalk:
    check, nonempty = node.check, node.nonempty

    def walk(value: Any, w: Walk) -> Any:
        if type(value) is not str or (nonempty and not value) or (check and check(value)):
            raise Fallback
        return value

    return walk


def _enum(node: Enum) -> FastWalk:
    values = frozenset(node.values)

    def walk(value: Any, w: Walk) -> Any:
        if type(value) is not str or value not in values:
            raise Fallback
        return value

    return walk


def _within(minimum: float | None, maximum: float | None) -> Callable[[Any], bool]:
    low = -math.inf if minimum is None else minimum
    high = math.inf if maximum is None else maximum
    return lambda v: low <= v <= high


def _int(node: Int) -> FastWalk:
    within = _within(node.minimum, node.maximum)

    def walk(value: Any, w: Walk) -> Any:
        if type(value) is not int or not within(value):
            raise Fallback
        return value

    return walk


def _float(node: Float) -> FastWalk:
    within, keep = _within(node.minimum, node.maximum), isinstance(node, Number)

    def walk(value: Any, w: Walk) -> Any:
        t = type(value)
        if (t is not int and t is not float) or not math.isfinite(value):
            raise Fallback
        number = float(value)
        if not within(number):
            raise Fallback
        return value if keep else number

    return walk


def _bool(node: Bool) -> FastWalk:
    def walk(value: Any, w: Walk) -> Any:
        if type(value) is not bool:
            raise Fallback
        return value

    return walk


@functools.lru_cache(maxsize=256, typed=True)
def _quantity_text(value: str | int) -> str | None:
    """The wire form of a valid quantity of at least 1Mi, else None (as Quantity.walk)."""
    try:
        text = normalize_quantity(value)
    except Invalid:
        return None
    return text if parse_quantity(text) >= MIB else None


def _quantity(node: Quantity) -> FastWalk:
    remember = _quantity_text
    compute = _quantity_text.__wrapped__

    def walk(value: Any, w: Walk) -> Any:
        t = type(value)
        if t is int:
            text = remember(value)
        elif t is str:
            text = remember(value) if len(value) <= _QUANTITY_CACHE_LEN else compute(value)
        else:
            raise Fallback
        if text is None:
            raise Fallback
        return text

    return walk


def _int_or_percent(node: IntOrPercent) -> FastWalk:
    max_percent = node.max_percent

    def walk(value: Any, w: Walk) -> Any:
        t = type(value)
        if t is int:
            if value < 0:
                raise Fallback
            return value
        match = _PERCENT.match(value) if t is str else None
        if not match or (max_percent is not None and int(match[1]) > max_percent):
            raise Fallback
        return value

    return walk


_BUILDERS: tuple[tuple[type, Callable[[Any], FastWalk]], ...] = (
    (Obj, _obj),
    (ListOf, _list),
    (MapOf, _map),
    (Str, _str),
    (Enum, _enum),
    (Int, _int),
    (Number, _float),
    (Float, _float),
    (Bool, _bool),
    (Quantity, _quantity),
    (IntOrPercent, _int_or_percent),
)
