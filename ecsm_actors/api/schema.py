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
  a field with a default always appears.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ecsm_actors.errors import Cause

#: Returned by a node whose value is invalid; the parent leaves the field out.
INVALID: Any = object()
#: Marks a :class:`Prop` without a default.
MISSING: Any = object()

Check = Callable[[Any], "str | None"]
"""A value check: returns an error message, or ``None`` when the value is fine."""


class Walk:
    """State of one walk: the causes found so far and a context (e.g. the object name)."""

    def __init__(self, context: Mapping[str, Any] | None = None) -> None:
        self.causes: list[Cause] = []
        self.context: dict[str, Any] = dict(context or {})

    def error(self, path: str, message: str) -> None:
        self.causes.append(Cause(field=path, message=message))

    def failed(self, path: str) -> bool:
        """True when a cause was recorded at ``path`` or anywhere below it."""
        return any(
            c.field == path or c.field.startswith((path + ".", path + "[")) for c in self.causes
        )


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def describe(value: Any) -> str:
    """A short description of a value for messages: ``string "abc"``, ``integer 3``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"integer {value}"
    if isinstance(value, float):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f'string "{shown}"'
    if isinstance(value, Mapping):
        return "map"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


class Node:
    """One schema node. ``walk`` returns the normalised value or :data:`INVALID`."""

    expected = "value"

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        raise NotImplementedError

    def wrong_type(self, value: Any, path: str, w: Walk) -> Any:
        w.error(path, f"expected {self.expected}, got {describe(value)}")
        return INVALID


class Raw(Node):
    """Any map, passed through as a deep copy (e.g. ``status`` on input to ``prepare``)."""

    expected = "map"

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if not isinstance(value, Mapping):
            return self.wrong_type(value, path, w)
        return copy.deepcopy(dict(value))


class ListOf(Node):
    """A list; ``unique_by`` (item → key) and ``unique_field`` report duplicates."""

    expected = "list"

    def __init__(
        self,
        item: Node,
        *,
        unique: bool = False,
        unique_by: Callable[[Any], Any] | None = None,
        unique_field: str = "",
        min_items: int = 0,
    ) -> None:
        self.item = item
        self.unique_by = unique_by if unique_by else (lambda v: v) if unique else None
        #: The items themselves must be unique (not a key of them).
        self.unique_items = unique and not unique_by
        self.unique_field = unique_field
        self.min_items = min_items

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if not isinstance(value, list | tuple):
            return self.wrong_type(value, path, w)
        if len(value) < self.min_items:
            w.error(path, f"must have at least {self.min_items} item(s)")
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
    """A map with string keys (checked by ``key_check``) and values walked by ``value``."""

    expected = "map"

    def __init__(self, value: Node, *, key_check: Check | None = None) -> None:
        self.value = value
        self.key_check = key_check

    def walk(self, value: Any, path: str, w: Walk) -> Any:
        if not isinstance(value, Mapping):
            return self.wrong_type(value, path, w)
        out: dict[str, Any] = {}
        for key in sorted(value, key=str):
            item_path = f"{path}[{key}]"
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
                w.error(join(path, str(key)), self._unknown(key))
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

    def _unknown(self, key: Any) -> str:
        message = f'unknown field "{key}"'
        close = difflib.get_close_matches(str(key), list(self.props), n=1, cutoff=0.6)
        return message + (f' (did you mean "{close[0]}"?)' if close else "")


def _is_empty(value: Any) -> bool:
    return isinstance(value, dict | list) and not value
