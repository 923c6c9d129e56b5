"""The fast path of the strict walker: schema nodes compiled into plain Python functions.

Owns :func:`compiled` (a node → its :data:`FastWalk`) and :class:`Fallback`. Runs in every
process; the registry's :func:`~ecsm_actors.api.prepare_spec` and
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

How: a map, list or scalar node and everything below it become the source text of one
function, compiled once with :func:`exec` (as :mod:`dataclasses` builds ``__init__``): the
fields of each map in schema order, nested maps, lists and maps of them written out in
place (as loops), scalar checks inline, syntax checks too when they carry an inline form
(:func:`~ecsm_actors.api.names.inline_check`) or, for costly ones, a look among the
strings they found valid before (:func:`~ecsm_actors.api.names.remembered`); a required
field is read by subscript (a missing one raises ``KeyError``, which declines), the fields
found are counted and only a map with more keys than that has its keys compared with the
schema's, and a constant default whose walk is pure is written as the display of its
walked value. Quantities, numbers and int-or-percent values are closures (a quantity text
accepted before is read from the node's own map, inline). The generated code only reads
names bound in its own namespace; nothing of the input ever reaches the source text.
``tests/bench/bench_stage.py`` measures it within a write's staging.
"""

from __future__ import annotations

import copy
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
from ecsm_actors.api.schema import (
    INVALID,
    MISSING,
    Check,
    Ignored,
    ListOf,
    MapOf,
    Node,
    Obj,
    Prop,
    Walk,
)
from ecsm_actors.errors import Invalid

FastWalk = Callable[[Any, Walk], Any]
"""A compiled node: ``(value, walk) -> normalised value``; raises :class:`Fallback`."""

#: Quantities are few and repeat; strings longer than this are not remembered.
_QUANTITY_CACHE_LEN = 32
#: Accepted quantity texts a node remembers (its generated readers look them up inline).
_QUANTITIES_KNOWN = 256


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

#: For loops nested deeper than this call the inner node's own function instead (CPython
#: refuses more than 20 statically nested blocks in one function).
_MAX_LOOPS = 6


class _Source:
    """The text of one generated function, the names it reads and its local variables."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"Fallback": Fallback}
        self.count = 0
        #: (map variable, field) → the variable holding a required scalar field's value.
        self.required: dict[tuple[str, str], str] = {}

    def bind(self, value: Any) -> str:
        name = f"n{len(self.names)}"
        self.names[name] = value
        return name

    def local(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def add(self, depth: int, *lines: str) -> None:
        self.lines += ("    " * depth + line for line in lines)

    def build(self) -> FastWalk:
        exec("\n".join(self.lines), self.names)  # the text is made from the schema alone
        return self.names["walk"]


def _literal(value: Any, src: _Source) -> str:
    """``value`` in the source text: an int or str as a literal, anything else by name."""
    return repr(value) if type(value) in (int, str) else src.bind(value)


#: Valid strings a remembered check keeps (then it forgets them all and starts again).
_KNOWN_VALID = 256
#: Longest string remembered (an image's most): a valid string may be as long as a request
#: (a timestamp's fraction of a second has any number of digits), and 256 of those would
#: hold hundreds of MiB; a longer one is checked each time.
_KNOWN_MAX_LEN = 512
_known_valid: dict[Check, set[str]] = {}


def _judge(check: Check) -> tuple[set[str], Callable[[str], bool]]:
    """The strings ``check`` found valid, and a function telling whether it has a message
    for a string (which it keeps when not)."""
    known = _known_valid.setdefault(check, set())

    def judge(value: str) -> bool:
        if check(value) is not None:
            return True
        if len(value) > _KNOWN_MAX_LEN:
            return False
        if len(known) >= _KNOWN_VALID:
            known.clear()
        known.add(value)
        return False

    return known, judge


def _check_fails(check: Check, v: str, src: _Source) -> str:
    """An expression, true when ``check`` has a message for the str ``v``: the check's
    own inline form (see :func:`~ecsm_actors.api.names.inline_check`), a look among the
    strings a remembered check (:func:`~ecsm_actors.api.names.remembered`) found valid
    before, or a call."""
    if getattr(check, "remembered", False):
        known, judge = _judge(check)
        return f"({v} not in {src.bind(known)} and {src.bind(judge)}({v}))"
    form = getattr(check, "inline", None)
    if form is None:
        return f"{src.bind(check)}({v})"
    text, names = form
    return "(" + text.format(v=v, **{k: src.bind(x) for k, x in names.items()}) + ")"


def _invalid_when(node: Node, src: _Source, v: str = "v") -> str | None:
    """An expression, True when ``v`` is invalid for a scalar node that returns its input
    unchanged; None for any other node (exact types only, as in :func:`_compile`)."""
    kind = type(node)
    if kind is Str and isinstance(node, Str):
        cond = f"type({v}) is not str"
        if node.max_len is not None:
            cond += f" or len({v}) > {_literal(node.max_len, src)}"
        if node.nonempty:
            cond += f" or not {v}"
        if node.check is not None:
            cond += f" or {_check_fails(node.check, v, src)}"
        return cond
    if kind is Enum and isinstance(node, Enum):
        return f"type({v}) is not str or {v} not in {src.bind(frozenset(node.values))}"
    if kind is Int and isinstance(node, Int):
        cond = f"type({v}) is not int"
        if node.minimum is not None:
            cond += f" or {v} < {_literal(node.minimum, src)}"
        if node.maximum is not None:
            cond += f" or {v} > {_literal(node.maximum, src)}"
        return cond
    if kind is Bool:
        return f"type({v}) is not bool"
    return None


def _emit(node: Node, v: str, src: _Source, depth: int, loops: int) -> str:
    """Lines that check the value in variable ``v`` and give its walked value: the name
    of the variable that holds it (``v`` itself for a scalar returned unchanged).
    ``loops``: the for loops around these lines."""
    cond = _invalid_when(node, src, v)
    if cond is not None:
        src.add(depth, f"if {cond}:", "    raise Fallback")
        return v
    kind = type(node)
    if kind is Obj and isinstance(node, Obj):
        return _emit_obj(node, v, src, depth, loops)
    if kind is ListOf and isinstance(node, ListOf) and loops < _MAX_LOOPS:
        return _emit_list(node, v, src, depth, loops)
    if kind is MapOf and isinstance(node, MapOf) and loops < _MAX_LOOPS:
        return _emit_map(node, v, src, depth, loops)
    if kind is IntOrPercent and isinstance(node, IntOrPercent) and node.max_int is not None:
        # An int in range is returned as is; anything else is the node's own function's.
        src.add(depth, f"if type({v}) is not int or {v} < 0 or "
                       f"{v} > {_literal(node.max_int, src)}:",
                f"    {v} = {src.bind(compiled(node))}({v}, w)")
        return v
    out = src.local("r")
    walk = compiled(node)
    known = getattr(walk, "known", None)
    if known is not None:  # a text accepted before: its wire form, without a call
        src.add(depth, f"{out} = {src.bind(known)}.get({v}) if type({v}) is str else None",
                f"if {out} is None:", f"    {out} = {src.bind(walk)}({v}, w)")
        return out
    src.add(depth, f"{out} = {src.bind(walk)}({v}, w)")
    return out


def _pure(node: Node, value: Any) -> bool:
    """Whether the walk of ``value`` by ``node`` depends on ``value`` alone: no rule and
    no context met on the way (fields absent from ``value`` without a default are not
    walked)."""
    kind = type(node)
    if kind is Obj and isinstance(node, Obj):
        if node.post is not None or type(value) is not dict:
            return False
        for key, prop in node.props.items():
            if key in value:
                if not _pure(prop.node, value[key]):
                    return False
            elif prop.default is not MISSING and (
                    callable(prop.default) or not _pure(prop.node, prop.default)):
                return False
        return True
    if kind is ListOf and isinstance(node, ListOf):
        return type(value) is list and all(_pure(node.item, v) for v in value)
    if kind is MapOf and isinstance(node, MapOf):
        return type(value) is dict and all(_pure(node.value, v) for v in value.values())
    return kind in (Str, Enum, Int, Bool)


def _display(value: Any) -> str | None:
    """Source text that makes a new ``value`` each time it runs (a dict or list display
    of str, int and bool literals), or None for any other value."""
    if type(value) in (str, int, bool):
        return repr(value)
    if type(value) is dict and all(type(k) is str for k in value):
        items = [(repr(k), _display(v)) for k, v in value.items()]
        if all(text is not None for _, text in items):
            return "{" + ", ".join(f"{k}: {text}" for k, text in items) + "}"
    if type(value) is list:
        texts = [_display(v) for v in value]
        if all(text is not None for text in texts):
            return "[" + ", ".join(texts) + "]"  # type: ignore[arg-type]
    return None


def _walked_default(prop: Prop) -> str | None:
    """The walked value of a constant default as a display (see :func:`_display`), when
    the node's walk is pure and the default valid; else None."""
    if callable(prop.default) or not _pure(prop.node, prop.default):
        return None
    w = Walk()
    walked = prop.node.walk(copy.deepcopy(prop.default), "", w)
    return None if walked is INVALID or w.causes else _display(walked)


#: Nodes whose check refuses None (a required field then needs no check of its own).
_REFUSE_NONE = frozenset({Str, Enum, Int, Bool, Obj, ListOf, MapOf, Quantity, IntOrPercent,
                          Float, Number})


def _returns_container(node: Node) -> bool | None:
    """Whether the walked value of ``node`` is always a dict or list (True), never one
    (False), or either (None)."""
    kind = type(node)
    if kind in (Obj, ListOf, MapOf):
        return True
    if kind in (Str, Enum, Int, Bool, Number, Float, Quantity, IntOrPercent):
        return False
    return None


def _emit_obj(node: Obj, v: str, src: _Source, depth: int, loops: int) -> str:
    out, count = src.local("o"), src.local("c")
    keys = src.bind(frozenset(node.props))
    props = [(key, prop) for key, prop in node.props.items() if type(prop.node) is not Ignored]
    required = sum(1 for _, p in props if p.required)
    # Unknown fields: the fields found are counted (those always there once, up front),
    # and only a map with more keys than that (unknown ones, or known ones set to None,
    # or ignored ones) has its keys compared with the schema's. With one field that may
    # be absent, each of its two branches knows the count.
    counted = len(props) == len(node.props)
    single = counted and len(props) - required == 1
    src.add(depth, f"if type({v}) is not dict:" if counted else
            f"if type({v}) is not dict or not {v}.keys() <= {keys}:", "    raise Fallback")
    if counted and not single:
        src.add(depth, f"{count} = {required}")

    def fields_found(n: int) -> list[str]:
        return [f"    if len({v}) != {n} and not {v}.keys() <= {keys}:",
                "        raise Fallback"]

    present = (fields_found(required + 1) if single else
               [f"    {count} += 1"] if counted else ["    pass"])
    absent = fields_found(required) if single else []
    # Fields that are always there are gathered in one dict display, up to the first
    # optional one; the rest are set one by one, in schema order.
    gathered: list[str] | None = []

    def flush() -> None:
        nonlocal gathered
        if gathered is not None:
            src.add(depth, f"{out} = {{{', '.join(gathered)}}}")
            gathered = None

    for key, prop in props:
        field = _literal(key, src)
        x = src.local("x")
        if prop.required:
            # A missing key raises KeyError: the function's caller declines then.
            src.add(depth, f"{x} = {v}[{field}]")
            if type(prop.node) not in _REFUSE_NONE:
                src.add(depth, f"if {x} is None:", "    raise Fallback")
            item = _emit(prop.node, x, src, depth, loops)
            if item == x:  # a scalar as given: its variable holds the field's value
                src.required[out, key] = x
        elif prop.default is MISSING:  # optional: an empty map or list is left out
            flush()
            src.add(depth, f"{x} = {v}.get({field})", f"if {x} is not None:", *present)
            item = _emit(prop.node, x, src, depth + 1, loops)
            container = _returns_container(prop.node)
            if container is None:
                src.add(depth + 1, f"if {item} or not isinstance({item}, (dict, list)):",
                        f"    {out}[{field}] = {item}")
            elif container:
                src.add(depth + 1, f"if {item}:", f"    {out}[{field}] = {item}")
            else:
                src.add(depth + 1, f"{out}[{field}] = {item}")
            if absent:
                src.add(depth, "else:", *absent)
            continue
        elif callable(prop.default):  # may give None: the field is then left out
            flush()
            src.add(depth, f"{x} = {v}.get({field})", f"if {x} is None:",
                    f"    {x} = {src.bind(prop.default)}(w)", *absent, "else:", *present,
                    f"if {x} is not None:")
            item = _emit(prop.node, x, src, depth + 1, loops)
            src.add(depth + 1, f"{out}[{field}] = {item}")
            continue
        elif (walked := _walked_default(prop)) is not None:
            # The default's walked value is made by a display: no walk when it is used.
            src.add(depth, f"{x} = {v}.get({field})", f"if {x} is None:",
                    f"    {x} = {walked}", *absent, "else:", *present)
            item = _emit(prop.node, x, src, depth + 1, loops)
            if item != x:
                src.add(depth + 1, f"{x} = {item}")
            item = x
        else:
            src.add(depth, f"{x} = {v}.get({field})", f"if {x} is None:",
                    f"    {x} = {src.bind(prop.default)}", *absent, "else:", *present)
            item = _emit(prop.node, x, src, depth, loops)
        if gathered is not None:
            gathered.append(f"{field}: {item}")
        else:
            src.add(depth, f"{out}[{field}] = {item}")
    flush()
    if counted and not single:
        src.add(depth, f"if len({v}) != {count} and not {v}.keys() <= {keys}:",
                "    raise Fallback")
    if node.post is not None:
        src.add(depth, f"{src.bind(node.post)}({out}, '', w)", "if w.causes:",
                "    raise Fallback")
    return out


def _emit_list(node: ListOf, v: str, src: _Source, depth: int, loops: int) -> str:
    out = src.local("l")
    bad = f"type({v}) is not list"
    if node.min_items:
        bad += f" or len({v}) < {_literal(node.min_items, src)}"
    if node.max_items is not None:
        bad += f" or len({v}) > {_literal(node.max_items, src)}"
    src.add(depth, f"if {bad}:", "    raise Fallback")
    item = src.local("e")
    cond = _invalid_when(node.item, src, item)
    if cond is not None:  # scalars pass through unchanged: check them, copy the list
        src.add(depth, f"for {item} in {v}:", f"    if {cond}:", "        raise Fallback",
                f"{out} = {v}[:]")
        if node.unique_items:
            src.add(depth, f"if len(set({out})) != len({out}):", "    raise Fallback")
            return out
    elif node.unique_key and type(node.item) is Obj:  # unique by a field: seen as walked
        seen, key = src.local("s"), src.local("k")
        prop = node.item.props.get(node.unique_key)  # type: ignore[attr-defined]
        # A required field of a scalar kept as given is never None: its values are
        # gathered, and compared at the end.
        gather = prop is not None and prop.required and _invalid_when(prop.node, src) is not None
        src.add(depth, f"{out} = []", f"{seen} = {'[]' if gather else 'set()'}",
                f"for {item} in {v}:")
        walked = _emit(node.item, item, src, depth + 1, loops + 1)
        src.add(depth + 1, f"{out}.append({walked})")
        if gather:
            src.add(depth + 1, f"{seen}.append({src.required[walked, node.unique_key]})")
            src.add(depth, f"if len(set({seen})) != len({seen}):", "    raise Fallback")
        else:
            src.add(depth + 1, f"{key} = {walked}.get({_literal(node.unique_key, src)})",
                    f"if {key} is not None and {key} in {seen}:", "    raise Fallback",
                    f"{seen}.add({key})")
        return out
    else:
        src.add(depth, f"{out} = []", f"for {item} in {v}:")
        walked = _emit(node.item, item, src, depth + 1, loops + 1)
        src.add(depth + 1, f"{out}.append({walked})")
    if node.unique_by is not None:
        seen, key, each = src.local("s"), src.local("k"), src.local("e")
        src.add(depth, f"{seen} = set()", f"for {each} in {out}:",
                f"    {key} = {src.bind(node.unique_by)}({each})",
                f"    if {key} is not None and {key} in {seen}:", "        raise Fallback",
                f"    {seen}.add({key})")
    return out


def _emit_map(node: MapOf, v: str, src: _Source, depth: int, loops: int) -> str:
    out, key, item = src.local("m"), src.local("k"), src.local("e")
    bad = f"type({v}) is not dict"
    if node.max_items is not None:
        bad += f" or len({v}) > {_literal(node.max_items, src)}"
    src.add(depth, f"if {bad}:", "    raise Fallback", f"for {key} in {v}:",
            f"    if type({key}) is not str:", "        raise Fallback",
            f"{out} = {{}}", f"for {key} in sorted({v}):")
    if node.key_check is not None:
        src.add(depth + 1, f"if {_check_fails(node.key_check, key, src)}:",
                "    raise Fallback")
    src.add(depth + 1, f"{item} = {v}[{key}]")
    walked = _emit(node.value, item, src, depth + 1, loops + 1)
    src.add(depth + 1, f"{out}[{key}] = {walked}")
    return out


def _function(node: Node) -> FastWalk:
    """One function for ``node`` and everything below it."""
    src = _Source()
    src.add(0, "def walk(value, w):", "    try:")
    src.add(2, f"return {_emit(node, 'value', src, 2, 0)}")
    src.add(1, "except KeyError:", "    raise Fallback from None")
    return src.build()


# -- closures -------------------------------------------------------------------------


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

    known: dict[str, str] = {}  # accepted texts → their wire form, read inline (_emit)

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
        if t is str and len(value) <= _QUANTITY_CACHE_LEN and len(known) < _QUANTITIES_KNOWN:
            known[value] = found[0]
        return found[0]

    walk.known = known  # type: ignore[attr-defined]
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
    Obj: _function,
    ListOf: _function,
    MapOf: _function,
    Str: _function,
    Enum: _function,
    Int: _function,
    Bool: _function,
    Number: _float,
    Float: _float,
    Quantity: _quantity,
    IntOrPercent: _int_or_percent,
}
