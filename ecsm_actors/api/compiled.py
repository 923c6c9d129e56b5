"""The fast path of the strict walker: schema nodes compiled into plain Python functions.

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

How: an :class:`~ecsm_actors.api.schema.Obj` (and a list of scalars) becomes the source
text of one function — its fields in schema order, the checks of its scalar fields written
out inline — compiled once with :func:`exec` (as :mod:`dataclasses` builds ``__init__``);
every other node is a closure. The generated code only reads names bound in its own
namespace; nothing of the input ever reaches the source text.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from ecsm_actors.api.quantity import MIB, normalize_quantity, parse_quantity
from ecsm_actors.api.scalars import (
    _PERCENT,
    PERCENT_MAX_DIGITS,
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


def forget_compiled() -> None:
    """Drop every compiled walker (bounds are compiled in; after a change of
    :mod:`ecsm_actors.api.limits` the next call compiles again)."""
    _compiled.clear()


def compiled(node: Node) -> FastWalk:
    """The compiled walker of ``node`` (built once per node)."""
    entry = _compiled.get(id(node))
    if entry is None or entry[0] is not node:
        entry = (node, _compile(node))
        _compiled[id(node)] = entry
    return entry[1]


def _compile(node: Node) -> FastWalk:
    # Exact types: a subclass may walk differently, so it gets the generic adapter.
    build = _BUILDERS.get(type(node))
    return build(node) if build is not None else _generic(node)


def _generic(node: Node) -> FastWalk:
    """Any other node (``Raw``, future ones): its own walk, declining on any cause."""

    def walk(value: Any, w: Walk) -> Any:
        before = len(w.causes)
        out = node.walk(value, "", w)
        if out is INVALID or len(w.causes) != before:
            raise Fallback
        return out

    return walk


# -- generated functions --------------------------------------------------------------


class _Source:
    """The text of one generated function and the names it reads."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"Fallback": Fallback}

    def bind(self, value: Any) -> str:
        name = f"n{len(self.names)}"
        self.names[name] = value
        return name

    def add(self, depth: int, *lines: str) -> None:
        self.lines += ("    " * depth + line for line in lines)

    def build(self) -> FastWalk:
        exec("\n".join(self.lines), self.names)  # the text is made from the schema alone
        return self.names["walk"]


def _literal(value: Any, src: _Source) -> str:
    """``value`` in the source text: an int or str as a literal, anything else by name."""
    return repr(value) if type(value) in (int, str) else src.bind(value)


def _invalid_when(node: Node, src: _Source) -> str | None:
    """An expression, True when ``v`` is invalid for a scalar node that returns its input
    unchanged; None for any other node (exact types only, as in :func:`_compile`)."""
    kind = type(node)
    if kind is Str and isinstance(node, Str):
        cond = "type(v) is not str"
        if node.max_len is not None:
            cond += f" or len(v) > {_literal(node.max_len, src)}"
        if node.nonempty:
            cond += " or not v"
        if node.check is not None:
            cond += f" or {src.bind(node.check)}(v)"
        return cond
    if kind is Enum and isinstance(node, Enum):
        return f"type(v) is not str or v not in {src.bind(frozenset(node.values))}"
    if kind is Int and isinstance(node, Int):
        cond = "type(v) is not int"
        if node.minimum is not None:
            cond += f" or v < {_literal(node.minimum, src)}"
        if node.maximum is not None:
            cond += f" or v > {_literal(node.maximum, src)}"
        return cond
    if kind is Bool:
        return "type(v) is not bool"
    return None


def _value(node: Node, src: _Source, depth: int) -> None:
    """Lines that check ``v`` (a scalar) or replace it by its walked value."""
    cond = _invalid_when(node, src)
    if cond is not None:
        src.add(depth, f"if {cond}:", "    raise Fallback")
    else:
        src.add(depth, f"v = {src.bind(compiled(node))}(v, w)")


def _obj(node: Obj) -> FastWalk:
    src = _Source()
    keys = src.bind(frozenset(node.props))
    src.add(0, "def walk(value, w):")
    src.add(1, f"if type(value) is not dict or not value.keys() <= {keys}:",
            "    raise Fallback", "get = value.get", "out = {}")
    for key, prop in node.props.items():
        field = _literal(key, src)
        src.add(1, f"v = get({field})")
        if prop.required:
            src.add(1, "if v is None:", "    raise Fallback")
            _value(prop.node, src, 1)
            src.add(1, f"out[{field}] = v")
        elif prop.default is MISSING:  # optional: an empty map or list is left out
            src.add(1, "if v is not None:")
            _value(prop.node, src, 2)
            src.add(2, "if v or not isinstance(v, (dict, list)):", f"    out[{field}] = v")
        else:
            default = src.bind(prop.default)
            fill = f"{default}(w)" if callable(prop.default) else default
            src.add(1, "if v is None:", f"    v = {fill}", "if v is not None:")
            _value(prop.node, src, 2)
            src.add(2, f"out[{field}] = v")
    if node.post is not None:
        src.add(1, f"{src.bind(node.post)}(out, '', w)", "if w.causes:", "    raise Fallback")
    src.add(1, "return out")
    return src.build()


def _list(node: ListOf) -> FastWalk:
    src = _Source()
    src.add(0, "def walk(value, w):")
    src.add(1, f"if type(value) is not list or len(value) < {_literal(node.min_items, src)}:",
            "    raise Fallback")
    if node.max_items is not None:
        src.add(1, f"if len(value) > {_literal(node.max_items, src)}:", "    raise Fallback")
    cond = _invalid_when(node.item, src)
    if cond is not None:  # scalars pass through unchanged: check them, copy the list
        src.add(1, "for v in value:", f"    if {cond}:", "        raise Fallback",
                "out = value[:]")
    else:
        src.add(1, f"out = [{src.bind(compiled(node.item))}(v, w) for v in value]")
    if node.unique_items and cond is not None:
        src.add(1, "if len(set(out)) != len(out):", "    raise Fallback")
    elif node.unique_by is not None:
        src.add(1, "seen = set()", "for v in out:", f"    k = {src.bind(node.unique_by)}(v)",
                "    if k is not None and k in seen:", "        raise Fallback",
                "    seen.add(k)")
    src.add(1, "return out")
    return src.build()


# -- closures -------------------------------------------------------------------------


def _map(node: MapOf) -> FastWalk:
    sub, key_check, max_items = compiled(node.value), node.key_check, node.max_items

    def walk(value: Any, w: Walk) -> Any:
        if type(value) is not dict or (max_items is not None and len(value) > max_items):
            raise Fallback
        for key in value:
            if type(key) is not str:
                raise Fallback
        out: dict[str, Any] = {}
        for key in sorted(value):
            if key_check is not None and key_check(key):
                raise Fallback
            out[key] = sub(value[key], w)
        return out

    return walk


def _scalar(node: Node) -> FastWalk:
    """A scalar on its own (a list item, a map value): its inline check as a function."""
    src = _Source()
    src.add(0, "def walk(v, w):")
    _value(node, src, 1)
    src.add(1, "return v")
    return src.build()


def _within(minimum: float | None, maximum: float | None) -> Callable[[Any], bool]:
    low = -math.inf if minimum is None else minimum
    high = math.inf if maximum is None else maximum
    return lambda v: low <= v <= high


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


@functools.lru_cache(maxsize=256, typed=True)
def _quantity_text(value: str | int) -> tuple[str, Any] | None:
    """The wire form and size of a valid quantity of at least 1Mi, else None (as
    Quantity.walk before its maximum)."""
    try:
        text = normalize_quantity(value)
    except Invalid:
        return None
    size = parse_quantity(text)
    return (text, size) if size >= MIB else None


def _quantity(node: Quantity) -> FastWalk:
    remember = _quantity_text
    compute = _quantity_text.__wrapped__
    maximum = math.inf if node.maximum is None else node.maximum

    def walk(value: Any, w: Walk) -> Any:
        t = type(value)
        if t is int:
            found = remember(value)
        elif t is str:
            found = remember(value) if len(value) <= _QUANTITY_CACHE_LEN else compute(value)
        else:
            raise Fallback
        if found is None or found[1] > maximum:
            raise Fallback
        return found[0]

    return walk


def _int_or_percent(node: IntOrPercent) -> FastWalk:
    max_percent = node.max_percent
    max_int = math.inf if node.max_int is None else node.max_int

    def walk(value: Any, w: Walk) -> Any:
        t = type(value)
        if t is int:
            if value < 0 or value > max_int:
                raise Fallback
            return value
        match = _PERCENT.match(value) if t is str else None
        if not match or (max_percent is not None and (
                len(match[1]) > PERCENT_MAX_DIGITS or int(match[1]) > max_percent)):
            raise Fallback
        return value

    return walk


_BUILDERS: dict[type, Callable[[Any], FastWalk]] = {
    Obj: _obj,
    ListOf: _list,
    MapOf: _map,
    Str: _scalar,
    Enum: _scalar,
    Int: _scalar,
    Bool: _scalar,
    Number: _float,
    Float: _float,
    Quantity: _quantity,
    IntOrPercent: _int_or_percent,
}
