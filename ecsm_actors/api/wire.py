"""Typed views ⇄ wire dicts: snake_case dataclass attributes, camelCase wire keys.

Owns the generic conversion used by every typed view (:class:`WireObject`). Runs in every
process. Invariants:

* the wire name of a field is its camelCase name unless ``wire(name=...)`` overrides it;
* ``from_wire`` expects a *prepared* (defaulted, validated) wire dict, so it does no
  validation of its own: the typed views' ``from_dict`` runs ``prepare`` first;
* ``to_wire`` drops ``None`` fields and empty collections of fields marked
  ``omit_empty`` — exactly the fields the schema leaves out — so
  ``X.from_wire(d).to_wire() == d`` for every prepared ``d``;
* enums go out as plain ``str`` (YAML's safe dumper refuses ``str`` subclasses).
"""

from __future__ import annotations

import enum
import functools
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import field, fields
from typing import Any, Self


def wire(*, name: str | None = None, omit_empty: bool = False, **kwargs: Any) -> Any:
    """A dataclass field with a wire name override and/or ``omit_empty``."""
    return field(metadata={"wire": name, "omit_empty": omit_empty}, **kwargs)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


_Plan = tuple[tuple[str, str, Any, bool], ...]


def _build_plan(cls: type) -> _Plan:
    hints = typing.get_type_hints(cls)
    return tuple(
        (f.name, f.metadata.get("wire") or camel(f.name), hints[f.name],
         bool(f.metadata.get("omit_empty")))
        for f in fields(cls)
    )


# Typed as a plain callable: functools.cache's wrapper wants Hashable arguments and mypy
# does not see a class object (whose ``__hash__`` is the instances') as one.
_plan: Callable[[type], _Plan] = functools.cache(_build_plan)


class WireObject:
    """Base of the typed views (frozen kw_only dataclasses)."""

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Self:
        kwargs = {
            attr: _decode(hint, data[key])
            for attr, key, hint, _ in _plan(cls)
            if data.get(key) is not None
        }
        return cls(**kwargs)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for attr, key, _, omit_empty in _plan(type(self)):
            value = getattr(self, attr)
            if value is None or (omit_empty and not value and isinstance(value, tuple | dict)):
                continue
            out[key] = _encode(value)
        return out


def _decode(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(options[0], value) if len(options) == 1 else value
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_decode(item, v) for v in value)
    if origin in (dict, Mapping):
        return dict(value)
    if isinstance(hint, type):
        if issubclass(hint, WireObject):
            return hint.from_wire(value)
        if issubclass(hint, enum.Enum):
            return hint(value)
        if hint is float:
            return float(value)
    return value


def _encode(value: Any) -> Any:
    if isinstance(value, WireObject):
        return value.to_wire()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _encode(v) for k, v in value.items()}
    return value
