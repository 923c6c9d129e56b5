"""Go-compatible decoding of ECSM ``data`` payloads into frozen dataclasses.

Runs in every process that talks to ECSM (controllers, ecsm-cli, tests). It reproduces the
decoding rules of the original Go client (ecsm-api.md §1.8):

* unknown keys are ignored, missing keys and ``null`` become zero values;
* keys are matched exactly first, then case-insensitively (``upTime``/``uptime``, A-9);
* types are strict: an int field rejects ``1.5``, ``"1"``, booleans and values beyond int64,
  a bool field rejects ``0``/``"true"``, a string field rejects numbers; float fields
  accept any finite JSON number (Go's float64).

A type mismatch raises :class:`~ecsm_actors.errors.EcsmDecodeError` naming the JSON path.
Each dataclass is described once (a cached plan built from its type hints), so decoding a
page of 100 rows costs a few dictionary lookups per field.

Wire names default to the camelCase of the attribute; irregular ones are declared with
:func:`wire`. A dataclass with a ``raw`` attribute receives the wire dict unchanged.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from ecsm_actors.errors import EcsmDecodeError

T = TypeVar("T")
Converter = Callable[[Any], Any]

_PREFIX = "failed to unmarshal data into object"
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


class _Mismatch(Exception):
    """A type mismatch on the way up: ``where`` collects the path, innermost first."""

    def __init__(self, expected: str, value: Any) -> None:
        self.expected = expected
        self.value = value
        self.where: list[str] = []

    def error(self, root: str) -> EcsmDecodeError:
        path = root + "".join(reversed(self.where))
        return mismatch(path, self.expected, self.value)


def wire(name: str, **kwargs: Any) -> Any:
    """A dataclass field whose wire key is ``name`` (when camelCase of the attribute is not)."""
    return dataclasses.field(metadata={"wire": name}, **kwargs)


def raw_field() -> Any:
    """The ``raw`` attribute: the wire dict as received, excluded from equality and repr."""
    return dataclasses.field(default_factory=dict, repr=False, compare=False)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def kind_of(value: Any) -> str:
    """The JSON type name of a decoded value, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def mismatch(path: str, expected: str, value: Any) -> EcsmDecodeError:
    return EcsmDecodeError(f"{_PREFIX}: {path}: expected {expected}, got {kind_of(value)}",
                           cause=f"a type mismatch (expected {expected})")


def _str(value: Any) -> str:
    if value.__class__ is str:
        return value
    if value is None:
        return ""
    if isinstance(value, str):
        return str(value)
    raise _Mismatch("string", value)


def _int(value: Any) -> int:
    if value.__class__ is int and _INT64_MIN <= value <= _INT64_MAX:
        return value
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        if _INT64_MIN <= value <= _INT64_MAX:
            return int(value)
        raise _Mismatch("int64", value)
    raise _Mismatch("int", value)


def _float(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise _Mismatch("float64", value) from None
        if math.isfinite(number):
            return number
        raise _Mismatch("finite number", value)
    raise _Mismatch("number", value)


def _bool(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    raise _Mismatch("bool", value)


def _any(value: Any) -> Any:
    return value


def _object(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return value
    raise _Mismatch("object", value)


_SCALARS: dict[Any, Converter] = {str: _str, int: _int, float: _float, bool: _bool, Any: _any}
_SCALAR_TYPES: dict[Any, tuple[type, ...]] = {str: (str,), int: (int,), float: (int, float),
                                              bool: (bool,)}


def _optional(inner: Converter) -> Converter:
    def convert(value: Any) -> Any:
        return None if value is None else inner(value)
    return convert


def _either(options: tuple[Any, ...]) -> Converter:
    """A field the server sends with more than one scalar type (e.g. bool or string, A-6)."""
    accepted = tuple(t for o in options for t in _SCALAR_TYPES[o])
    names = " or ".join(o.__name__ for o in options)
    zero = _SCALARS[options[0]]

    def convert(value: Any) -> Any:
        if value is None:
            return zero(None)
        if isinstance(value, bool) and bool not in options:
            raise _Mismatch(names, value)
        if isinstance(value, accepted):
            return value
        raise _Mismatch(names, value)
    return convert


def _sequence(inner: Converter) -> Converter:
    def convert(value: Any) -> tuple[Any, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise _Mismatch("array", value)
        if inner is _any:
            return tuple(value)
        out = []
        for i, v in enumerate(value):
            try:
                out.append(inner(v))
            except _Mismatch as e:
                e.where.append(f"[{i}]")
                raise
        return tuple(out)
    return convert


def _nested(cls: type[Any]) -> Converter:
    def convert(value: Any) -> Any:
        return _decode(cls, value)
    return convert


def converter_for(hint: Any) -> Converter:
    """The converter of one type hint (scalars, ``X | None``, ``tuple[X, ...]``, dataclasses,
    ``dict[str, Any]``, unions of scalars)."""
    if hint in _SCALARS:
        return _SCALARS[hint]
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = tuple(a for a in args if a is not type(None))
        inner = converter_for(rest[0]) if len(rest) == 1 else _either(rest)
        return _optional(inner) if len(rest) < len(args) else inner
    if origin is tuple:
        return _sequence(converter_for(args[0]))
    if origin is dict or hint is dict:
        return _object
    if dataclasses.is_dataclass(hint):
        return _nested(hint)  # type: ignore[arg-type]
    raise TypeError(f"no wire converter for {hint!r}")


_PLANS: dict[type[Any], tuple[tuple[tuple[str, str, Converter], ...], bool]] = {}


def _plan(cls: type[Any]) -> tuple[tuple[tuple[str, str, Converter], ...], bool]:
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        fields = []
        has_raw = False
        for f in dataclasses.fields(cls):
            if f.name == "raw":
                has_raw = True
                continue
            key = f.metadata.get("wire") or camel(f.name)
            fields.append((f.name, key, converter_for(hints[f.name])))
        plan = (tuple(fields), has_raw)
        _PLANS[cls] = plan
    return plan


def lookup(value: dict[str, Any], key: str) -> Any:
    """``value[key]``, else the first key equal to it ignoring case (Go's rule), else None."""
    if key in value:
        return value[key]
    low = key.lower()
    for k, v in value.items():
        if k.lower() == low:
            return v
    return None


def _decode(cls: type[T], value: Any) -> T:
    if value is None:
        value = {}
    elif not isinstance(value, dict):
        raise _Mismatch("object", value)
    fields, has_raw = _plan(cls)
    kwargs: dict[str, Any] = {}
    for attr, key, convert in fields:
        v = value[key] if key in value else lookup(value, key)
        try:
            kwargs[attr] = convert(v)
        except _Mismatch as e:
            e.where.append(f".{key}")
            raise
    if has_raw:
        kwargs["raw"] = value
    return cls(**kwargs)


def decode(cls: type[T], value: Any, path: str = "data") -> T:
    """Decode a JSON value (``None`` → all zero values) into the dataclass ``cls``."""
    try:
        return _decode(cls, value)
    except _Mismatch as e:
        raise e.error(path) from None


def decode_required(cls: type[T], value: Any, path: str = "data") -> T:
    """:func:`decode` for answers whose zero value would pass for a real one (an object
    fetched by id, a page): ``null`` (or an empty body) is an EcsmDecodeError here."""
    if value is None:
        raise EcsmDecodeError(f"{_PREFIX}: {path}: expected object, got null",
                              cause="null where an object is required")
    return decode(cls, value, path)


def decode_list(cls: type[T], value: Any, path: str = "data") -> list[T]:
    """Decode a JSON array (``None`` → empty) of ``cls`` objects."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise mismatch(path, "array", value)
    return [decode(cls, v, f"{path}[{i}]") for i, v in enumerate(value)]
