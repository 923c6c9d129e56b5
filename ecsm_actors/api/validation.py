"""Entry points of defaulting and validation: :func:`prepare` and :func:`prepare_status`.

Owns the shape of a whole object (``apiVersion``, ``kind``, ``metadata``, ``spec``,
``status``) and dispatches ``spec``/``status`` to the schema of the kind. Runs in every
process; the registry calls it on every write. Invariants: a bad object raises
:class:`~ecsm_actors.errors.Invalid` carrying every cause with its field path, and nothing
is returned half-checked; the result is a new dict (the input is never mutated);
``prepare(prepare(x)) == prepare(x)``; ``status`` given to ``prepare`` is passed through
as is (the registry decides what to keep; :func:`prepare_status` checks it).
:func:`prepare_spec` prepares what a write of spec and metadata keeps of an object.
All three take the compiled fast path (:mod:`ecsm_actors.api.compiled`) first and walk again
with the generic walker only when it declines, so results and errors are the generic
walker's. An error is bounded whatever the input: at most ``MAX_CAUSES`` causes and a
count of the others, input quoted only clipped and escaped (:mod:`ecsm_actors.api.echo`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ecsm_actors.api import echo, hpa_schema, service_schema
from ecsm_actors.api.compiled import Fallback, compiled
from ecsm_actors.api.kinds import API_VERSION, KINDS
from ecsm_actors.api.meta import METADATA, SERVER_OWNED
from ecsm_actors.api.names import dns_label
from ecsm_actors.api.scalars import Enum
from ecsm_actors.api.schema import Ignored, Obj, Prop, Raw, Walk, describe
from ecsm_actors.errors import Cause, Invalid

_SPECS: dict[str, Obj] = {"ECSMService": service_schema.SPEC, "ECSMHpa": hpa_schema.SPEC}
_STATUSES: dict[str, Obj] = {"ECSMService": service_schema.STATUS, "ECSMHpa": hpa_schema.STATUS}


def _object_schema(spec: Obj | Raw) -> Obj:
    return Obj(
        {
            "apiVersion": Prop(node=Enum([API_VERSION]), required=True),
            "kind": Prop(node=Enum(KINDS), required=True),
            "metadata": Prop(node=METADATA, required=True),
            "spec": Prop(node=spec, required=True),
            "status": Prop(node=Raw()),
        }
    )


_OBJECTS: dict[str, Obj] = {kind: _object_schema(spec) for kind, spec in _SPECS.items()}
_UNKNOWN_KIND = _object_schema(Raw())
_SERVER_OWNED = frozenset(SERVER_OWNED)


def _spec_write_schema(schema: Obj) -> Obj:
    """``schema`` with ``status`` and the server-owned metadata taken and left out."""
    meta = schema.props["metadata"]
    assert isinstance(meta.node, Obj)
    ignored = Prop(node=Ignored())
    meta_props = {k: ignored if k in _SERVER_OWNED else p for k, p in meta.node.props.items()}
    props = {**schema.props, "status": ignored,
             "metadata": Prop(node=Obj(meta_props, post=meta.node.post), required=True)}
    return Obj(props, post=schema.post)


#: The compiled fast path of :func:`prepare_spec`, by kind.
_SPEC_WRITES: dict[str, Obj] = {kind: _spec_write_schema(o) for kind, o in _OBJECTS.items()}


def prepare(obj: Mapping[str, Any]) -> dict[str, Any]:
    """Default and validate a whole object; return its normalised wire dict.

    Raises ``Invalid`` listing every cause with its field path (``spec.template.image``)."""
    if not isinstance(obj, Mapping):
        cause = Cause(field="", message=f"expected map, got {describe(obj)}")
        raise Invalid("object is invalid", [cause])
    kind = obj.get("kind")
    context = {"name": _name_of(obj)}
    schema = _OBJECTS.get(kind, _UNKNOWN_KIND) if isinstance(kind, str) else _UNKNOWN_KIND
    try:
        return compiled(schema)(obj, Walk(context=context))
    except Fallback:
        pass
    walk = Walk(context=context)
    out = schema.walk(obj, "", walk)
    if walk.causes:
        raise Invalid(_title(obj), walk.all_causes())
    return out


def prepare_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """:func:`prepare` of what a write of spec and metadata keeps of ``obj``: its
    ``status`` and its server-owned metadata left out, neither checked. The compiled fast
    path walks ``obj`` as it is; only when it declines is the object copied without them
    and prepared (so errors are :func:`prepare`'s)."""
    kind = obj.get("kind")
    schema = _SPEC_WRITES.get(kind) if type(kind) is str else None
    if schema is not None:
        meta = obj.get("metadata")
        # The name as the context: a walk that returns has found it a valid DNS label,
        # which is what _name_of would have given (a walk that declines is dropped).
        name = meta.get("name") if type(meta) is dict else None
        try:
            return compiled(schema)(obj, Walk(context={"name": name}))
        except Fallback:
            pass
    body = dict(obj)
    body.pop("status", None)
    meta = body.get("metadata")
    if isinstance(meta, dict) and not _SERVER_OWNED.isdisjoint(meta):
        body["metadata"] = {k: v for k, v in meta.items() if k not in _SERVER_OWNED}
    prepared = prepare(body)
    prepared.pop("status", None)
    return prepared


def prepare_status(kind: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """Validate (and default the counters of) a ``status`` block of ``kind``."""
    schema = _STATUSES.get(kind)
    if schema is None:
        cause = Cause(field="kind", message="expected one of " + ", ".join(KINDS))
        raise Invalid(f"unknown kind '{echo.key_text(kind)}'", [cause])
    try:
        return compiled(schema)(status, Walk())
    except Fallback:
        pass
    walk = Walk()
    out = schema.walk(status, "status", walk)
    if walk.causes:
        raise Invalid(f"{kind} status is invalid", walk.all_causes())
    return out


def _name_of(obj: Mapping[str, Any]) -> str | None:
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return name if isinstance(name, str) and dns_label(name) is None else None


def _title(obj: Mapping[str, Any]) -> str:
    kind = echo.clip(obj["kind"]) if isinstance(obj.get("kind"), str) else "object"
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    name, namespace = meta.get("name"), meta.get("namespace") or "default"
    if not isinstance(name, str):
        return f"{kind} is invalid"
    namespace = echo.clip(namespace) if isinstance(namespace, str) else "?"
    return f'{kind} "{namespace}/{echo.clip(name)}" is invalid'
