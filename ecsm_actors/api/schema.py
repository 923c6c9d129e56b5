"""A small strict dict-walker: type checks, defaults and field paths for API objects.

Owns the structural schema vocabulary (:class:`Obj`, :class:`Prop`, :class:`ListOf`,
:class:`MapOf`) and the walk state; scalar nodes live in ``api.scalars``. Runs in every
process (the registry on every write, clients before sending). Invariants:

* a walk never raises for bad input: every problem becomes one :class:`Cause` whose
  ``field`` is the path of the offending value (``spec.template.env[1].name``), and all
  causes of one object are collected in a single pass, like strict ``kubectl apply``;
* unknown fields are causes (with their own path), never silently dropped;
* the output is a new, normalised dict whose keys follow schema order, so walking the
  same input twice (or walking an output again) yields an identical dict;
* an optional field without a default whose value is ``None``, ``{}`` or ``[]`` is left out;
  a field with a default always appears;
* hostile input costs bounded work and a bounded answer: a walk keeps the first
  :data:`MAX_CAUSES` causes and counts the rest (:meth:`Walk.all_causes` ends with
  "... and N more"); "did you mean" suggestions are computed for the first
  :data:`MAX_SUGGESTIONS` unknown fields of a walk only; keys and values quoted in a
  cause are clipped and escaped (:mod:`ecsm_actors.api.echo`); a list or map longer than
  its ``max_items`` is refused without walking its items; nothing recurses deeper than
  the schema (or :data:`RAW_MAX_DEPTH` for a ``Raw`` map).
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ecsm_actors.api import echo
from ecsm_actors.errors import Cause

#: Returned by a node whose value is invalid; the parent leaves the field out.
INVALID: Any = object()
#: Marks a :class:`Prop` without a default.
MISSING: Any = object()

Check = Callable[[Any], "str | None"]
"""A value check: returns an error message, or ``None`` when the value is fine."""

#: Causes a walk keeps; the rest are only counted (a reply stays a few KiB).
MAX_CAUSES = 20
#: Unknown fields of one walk that get a "did you mean" suggestion (difflib is costly).
MAX_SUGGESTIONS = 5
#: Unknown keys longer than this get no suggestion.
SUGGEST_MAX_LEN = 64
#: Deepest nesting a ``Raw`` map (a status passed through) may have.
RAW_MAX_DEPTH = 64


class Walk:
    """State of one walk: the causes found so far and a context (e.g. the object name)."""

    def __init__(self, context: Mapping[str, Any] | None = None) -> None:
        self.causes: list[Cause] = []
        #: Causes found beyond :data:`MAX_CAUSES`, counted but not kept.
        self.dropped = 0
        #: Suggestions computed so far (at most :data:`MAX_SUGGESTIONS`).
        self.suggestions = 0
        self.context: dict[str, Any] = dict(context or {})

    def error(self, path: str, message: str) -> None:
        if len(self.causes) < MAX_CAUSES:
            self.causes.append(Cause(field=path, message=message))
        else:
            self.dropped += 1

    @property
    def full(self) -> bool:
        """True once further causes are only counted (callers may skip the message)."""
        return len(self.causes) >= MAX_CAUSES

    def all_causes(self) -> list[Cause]:
        """The kept causes, then one saying how many more there were."""
        if not self.dropped:
            return list(self.causes)
        return [*self.causes, Cause(field="", message=f"... and {self.dropped} more")]

    def failed(self, path: str) -> bool:
        """True when a cause was recorded at ``path`` or anywhere below it."""
        return any(
            c.field == path or c.field.startswith((path + ".", path + "[")) for c in self.causes
        )


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    """A short description of a value for messages: ``string "abc"``, ``integer 3``
    (bounded and escaped: see :func:`ecsm_actors.api.echo.describe`)."""
    return echo.describe(value)


class Node:
    """One schema node. ``walk`` returns the normalised value or :data:`INVALID`."""

    expected = "value"

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        raise NotImplementedError

    def wrong_type(self, value: Any, path: str, w: Walk) -> Any:
        w.error(path, f"expected {self.expected}, got {describe(value)}")
        return INVALID


class _TooDeep(Exception):
    pass


def _copy(value: Any, depth: int) -> Any:
    """A deep copy of maps and lists, refusing to go deeper than :data:`RAW_MAX_DEPTH`."""
    if depth > RAW_MAX_DEPTH:
        raise _TooDeep
    if isinstance(value, Mapping):
        return {k: _copy(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v, depth + 1) for v in value]
    return copy.copy(value)


class Raw(Node):
    """Any map, passed through as a deep copy (e.g. ``status`` on input to ``prepare``),
    nested at most :data:`RAW_MAX_DEPTH` deep."""

    expected = "map"

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if not isinstance(value, Mapping):
            return self.wrong_type(value, path, w)
        try:
            return _copy(value, 0)
        except _TooDeep:
            w.error(path, f"must not be nested more than {RAW_MAX_DEPTH} levels deep")
            return INVALID


class Ignored(Node):
    """A field taken and left out of the result, whatever its value: what a request may
    carry that is not the caller's to set (a spec write's ``status``, say)."""

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        return INVALID


class ListOf(Node):
    """A list; ``unique_by`` (item → key) and ``unique_field`` report duplicates;
    ``unique_key``: the items are maps unique by that field (both at once)."""

    expected = "list"

    def __init__(
        self,
        item: Node,
        *,
        unique: bool = False,
        unique_by: Callable[[Any], Any] | None = None,
        unique_field: str = "",
        unique_key: str = "",
        min_items: int = 0,
        max_items: int | None = None,
    ) -> None:
        self.item = item
        if unique_key:
            unique_by, unique_field = (lambda v: v.get(unique_key)), unique_key
        self.unique_key = unique_key
        self.unique_by = unique_by if unique_by else (lambda v: v) if unique else None
        #: The items themselves must be unique (not a key of them).
        self.unique_items = unique and not unique_by
        self.unique_field = unique_field
        self.min_items = min_items
        self.max_items = max_items

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if not isinstance(value, list | tuple):
            return self.wrong_type(value, path, w)
        if len(value) < self.min_items:
            w.error(path, f"must have at least {self.min_items} item(s)")
            return INVALID
        if self.max_items is not None and len(value) > self.max_items:
            w.error(path, f"must have at most {self.max_items} items, got {len(value)}")
            return INVALID
        out: list[Any] = []
        seen: set[Any] = set()
        ok = True
        for i, raw in enumerate(value):
            item_path = f"{path}[{i}]"
            item = self.item.walk(raw, item_path, w)
            if item is INVALID:
                ok = False
                continue
            if self.unique_by is not None:
                key = self.unique_by(item)
                if key is not None and key in seen:
                    w.error(join(item_path, self.unique_field) if self.unique_field else item_path,
                            f"duplicate value {describe(key)}")
                    ok = False
                seen.add(key)
            out.append(item)
        return out if ok else INVALID


class MapOf(Node):
    """A map with string keys (checked by ``key_check``) and values walked by ``value``,
    at most ``max_items`` of them."""

    expected = "map"

    def __init__(self, value: Node, *, key_check: Check | None = None,
                 max_items: int | None = None) -> None:
        self.value = value
        self.key_check = key_check
        self.max_items = max_items

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if not isinstance(value, Mapping):
            return self.wrong_type(value, path, w)
        if self.max_items is not None and len(value) > self.max_items:
            w.error(path, f"must have at most {self.max_items} entries, got {len(value)}")
            return INVALID
        out: dict[str, Any] = {}
        for key in sorted(value, key=key_order):
            item_path = f"{path}[{echo.key_text(key)}]"
            if not isinstance(key, str):
                w.error(item_path, f"key must be a string, got {describe(key)}")
                continue
            if self.key_check and (message := self.key_check(key)):
                w.error(item_path, message)
                continue
            item = self.value.walk(value[key], item_path, w)
            if item is not INVALID:
                out[key] = item
        return out


@dataclass(frozen=True, kw_only=True)
class Prop:
    """One field of an :class:`Obj`. ``default`` is walked like input; a callable default
    receives the :class:`Walk` (for context-dependent defaults) and may return ``None``."""

    node: Node
    required: bool = False
    default: Any = MISSING


class Obj(Node):
    """A map with known fields. ``post(out, path, w)`` runs cross-field rules afterwards,
    on the fields that were valid."""

    expected = "map"

    def __init__(
        self,
        props: Mapping[str, Prop],
        *,
        post: Callable[[dict[str, Any], str, Walk], None] | None = None,
    ) -> None:
        self.props = dict(props)
        self.post = post

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if not isinstance(value, Mapping):
            return self.wrong_type(value, path, w)
        for key in value:
            if key not in self.props:
                if w.full:
                    w.dropped += 1
                    continue
                w.error(join(path, echo.key_text(key)), self._unknown(key, w))
        out: dict[str, Any] = {}
        for key, prop in self.props.items():
            field_path = join(path, key)
            raw = value.get(key)
            if raw is None:
                if prop.required:
                    w.error(field_path, "required")
                    continue
                if prop.default is MISSING:
                    continue
                raw = prop.default(w) if callable(prop.default) else copy.deepcopy(prop.default)
                if raw is None:
                    continue
            item = prop.node.walk(raw, field_path, w)
            if item is INVALID:
                continue
            if prop.default is MISSING and not prop.required and _is_empty(item):
                continue
            out[key] = item
        if self.post is not None:
            self.post(out, path, w)
        return out

    def _unknown(self, key: Any, w: Walk) -> str:
        if not isinstance(key, str):
            return f"unknown field: {echo.describe(key)}"
        message = f'unknown field "{echo.clip(key)}"'
        if w.suggestions >= MAX_SUGGESTIONS or len(key) > SUGGEST_MAX_LEN:
            return message
        w.suggestions += 1
        close = difflib.get_close_matches(key, list(self.props), n=1, cutoff=0.6)
        return message + (f' (did you mean "{close[0]}"?)' if close else "")


def key_order(key: Any) -> tuple[int, str]:
    """Sort key of map keys: strings in order, any other key after them (never ``str()``:
    an integer key of many digits cannot be turned into one)."""
    return (0, key) if isinstance(key, str) else (1, "")


def _is_empty(value: Any) -> bool:
    return isinstance(value, dict | list) and not value
