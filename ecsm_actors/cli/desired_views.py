"""How ``ecsm-cli`` shows ECSMService and ECSMHpa objects: table rows and ``describe`` text.

Runs in the CLI process only; pure functions of wire dicts (and ``now``), so they are
unit-testable. Missing fields are shown as ``<none>``/``<unknown>``, never a crash: the
registry may hold objects written by an older or newer version. Every string shown is
escaped (:func:`~ecsm_actors.cli.printers.escape`): an annotation or a condition message
holding a newline, an escape sequence or a right-to-left override shows it as ``\n``,
``\x1b``, ``\u202e``. A VSOA password is never shown, only whether one is set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ecsm_actors.api.secrets import REDACTED
from ecsm_actors.cli.printers import escape, format_age, render_table

Obj = dict[str, Any]

SERVICE_HEADERS = ("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "STRATEGY", "IMAGE", "AGE")
SERVICE_WIDE = ("PRIORITY", "NODES", "REVISION", "ECSM-IDS")
HPA_HEADERS = ("NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE")
HPA_WIDE: tuple[str, ...] = ()


def _get(obj: Any, *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(p)
    return default if obj is None else obj


def desired_replicas(obj: Obj) -> int:
    strategy = _get(obj, "spec", "deploymentStrategy", default={})
    if strategy.get("type") == "Static":
        return len(strategy.get("nodes") or ())
    return int(strategy.get("replicas") or 0)


def service_row(obj: Obj, wide: bool, now: float | None = None) -> list[Any]:
    status = obj.get("status") or {}
    strategy = _get(obj, "spec", "deploymentStrategy", default={})
    row = [
        _get(obj, "metadata", "name"),
        f"{status.get('readyReplicas', 0)}/{desired_replicas(obj)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        strategy.get("type"),
        _get(obj, "spec", "template", "image"),
        format_age(_get(obj, "metadata", "creationTimestamp"), now),
    ]
    if wide:
        nodes = strategy.get("nodes") or strategy.get("nodePool") or ()
        row += [_get(obj, "spec", "priority", default=0), ",".join(nodes),
                status.get("currentRevision"),
                ",".join(str(i) for i in status.get("underlyingServiceIDs") or ())]
    return row


def hpa_targets(obj: Obj) -> str:
    """``cpu: 45%/60%, memory: <unknown>/80%`` from spec targets and status currents."""
    current = {}
    for m in _get(obj, "status", "currentMetrics", default=[]):
        name = _get(m, "resource", "name")
        value = _get(m, "resource", "current", "averageUtilization")
        if name and value is not None:
            current[name] = value
    parts = []
    for m in _get(obj, "spec", "metrics", default=[]):
        name = _get(m, "resource", "name", default="?")
        target = _get(m, "resource", "target", "averageUtilization")
        have = current.get(name)
        shown = f"{round(have)}%" if have is not None else "<unknown>"
        parts.append(f"{name}: {shown}/{target}%" if target is not None else f"{name}: {shown}")
    return ", ".join(parts)


def hpa_row(obj: Obj, wide: bool, now: float | None = None) -> list[Any]:
    ref = _get(obj, "spec", "scaleTargetRef", default={})
    return [
        _get(obj, "metadata", "name"),
        f"{ref.get('kind', 'ECSMService')}/{ref.get('name', '')}",
        hpa_targets(obj),
        _get(obj, "spec", "minReplicas"),
        _get(obj, "spec", "maxReplicas"),
        _get(obj, "status", "currentReplicas", default=0),
        format_age(_get(obj, "metadata", "creationTimestamp"), now),
    ]


RowFn = Callable[[Obj, bool, "float | None"], list[Any]]
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], RowFn]] = {
    "ECSMService": (SERVICE_HEADERS, SERVICE_WIDE, service_row),
    "ECSMHpa": (HPA_HEADERS, HPA_WIDE, hpa_row),
}


def table(kind: str, items: Sequence[Obj], *, wide: bool, all_namespaces: bool,
          now: float | None = None) -> tuple[list[str], list[list[Any]]]:
    headers, extra, row_fn = TABLES[kind]
    cols = (["NAMESPACE"] if all_namespaces else []) + list(headers) + (
        list(extra) if wide else [])
    rows = []
    for obj in items:
        row = row_fn(obj, wide, now)
        rows.append(([_get(obj, "metadata", "namespace")] if all_namespaces else []) + row)
    return cols, rows


# -- describe --------------------------------------------------------------------------


def _field(label: str, value: Any, indent: int = 0) -> str:
    shown = "<none>" if value is None or value == "" or value == [] or value == {} else value
    return f"{' ' * indent}{label + ':':<22}{escape(str(shown))}"


_LONG_VALUE = 60


def _mapping(value: Any) -> str:
    """``k=v, …``; long values (the revision templates kept in annotations) are cut, as
    ``-o yaml`` shows them whole."""
    if not value:
        return "<none>"
    return ", ".join(f"{escape(str(k))}={_cut(str(v))}" for k, v in value.items())


def _cut(text: str) -> str:
    """``text`` escaped, cut to :data:`_LONG_VALUE` characters (``…`` marks a cut)."""
    head = escape(text[:_LONG_VALUE + 1])
    if len(text) <= _LONG_VALUE and len(head) <= _LONG_VALUE:
        return head
    return head[:_LONG_VALUE] + "…"


def _conditions(obj: Obj, now: float | None) -> list[str]:
    conditions = _get(obj, "status", "conditions", default=[])
    if not conditions:
        return ["Conditions:            <none>"]
    rows = [[c.get("type"), c.get("status"), c.get("reason"), c.get("message"),
             format_age(c.get("lastTransitionTime"), now)] for c in conditions]
    body = render_table(["Type", "Status", "Reason", "Message", "Age"], rows)
    return ["Conditions:"] + ["  " + line for line in body.splitlines()]


def _metadata(obj: Obj, now: float | None) -> list[str]:
    meta = obj.get("metadata") or {}
    lines = [
        _field("Name", meta.get("name")),
        _field("Namespace", meta.get("namespace")),
        _field("Kind", f"{obj.get('kind')} ({obj.get('apiVersion')})"),
        _field("Labels", _mapping(meta.get("labels"))),
        _field("Annotations", _mapping(meta.get("annotations"))),
        _field("UID", meta.get("uid")),
        _field("Resource version", meta.get("resourceVersion")),
        _field("Generation", meta.get("generation")),
        _field("Created", f"{meta.get('creationTimestamp')} "
                          f"({format_age(meta.get('creationTimestamp'), now)} ago)"),
        _field("Finalizers", ", ".join(meta.get("finalizers") or ())),
    ]
    if meta.get("deletionTimestamp"):
        lines.append(_field("Deletion requested", meta["deletionTimestamp"]))
    return lines


def _vsoa_password(template: Obj) -> str | None:
    """``<redacted>`` when set inline (never the value), ``from file PATH``, or None."""
    vsoa = template.get("vsoa") or {}
    if vsoa.get("passwordFile"):
        return f"from file {vsoa['passwordFile']}"
    return REDACTED if vsoa.get("password") else None


def describe_service(obj: Obj, now: float | None = None) -> str:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    strategy = spec.get("deploymentStrategy") or {}
    template = spec.get("template") or {}
    rollout = spec.get("rollout") or {}
    lines = _metadata(obj, now) + [
        "Spec:",
        _field("Strategy", strategy.get("type"), 2),
        _field("Replicas", desired_replicas(obj), 2),
        _field("Nodes", ", ".join(strategy.get("nodes") or ()), 2),
        _field("Node pool", ", ".join(strategy.get("nodePool") or ()), 2),
        _field("Upgrade strategy", _get(spec, "upgradeStrategy", "type"), 2),
        _field("Image", template.get("image"), 2),
        _field("Pull policy", template.get("imagePullPolicy"), 2),
        _field("Limits", _mapping(_get(template, "resources", "limits")), 2),
        _field("VSOA password", _vsoa_password(template), 2),
        _field("Rollout", f"maxSurge={rollout.get('maxSurge')} "
                          f"maxUnavailable={rollout.get('maxUnavailable')}", 2),
        _field("Depends on", ", ".join(spec.get("dependsOn") or ()), 2),
        _field("Priority", spec.get("priority"), 2),
        _field("Preemption policy", spec.get("preemptionPolicy"), 2),
        "Status:",
        _field("Replicas", f"{status.get('replicas', 0)} current, "
                           f"{status.get('readyReplicas', 0)} ready, "
                           f"{status.get('updatedReplicas', 0)} up-to-date, "
                           f"{status.get('availableReplicas', 0)} available", 2),
        _field("Observed generation", status.get("observedGeneration"), 2),
        _field("Current revision", status.get("currentRevision"), 2),
        _field("ECSM services", ", ".join(map(str, status.get("underlyingServiceIDs") or ())),
               2),
    ]
    return "\n".join(lines + _preemptions(obj, now) + _conditions(obj, now))


def _since(time: Any, now: float | None) -> str:
    return f"{time} ({format_age(time, now)} ago)" if time else "<unknown>"


def _preemptions(obj: Obj, now: float | None) -> list[str]:
    """Preemptions suffered (held now: the record the controller restores from) and
    given (the last few), each with its time and reason."""
    suffered = _get(obj, "status", "preemptions", default=[])
    given = _get(obj, "status", "preemptionsGiven", default=[])
    lines = []
    if suffered:
        rows = [[_since(r.get("time"), now), r.get("preemptor"), r.get("priority"),
                 r.get("instances"), ",".join(r.get("nodes") or ()) or "-", r.get("reason")]
                for r in suffered if isinstance(r, dict)]
        body = render_table(["Since", "Preemptor", "Priority", "Instances", "Nodes",
                             "Reason"], rows)
        lines += ["Preemptions suffered:"] + ["  " + line for line in body.splitlines()]
    else:
        lines.append("Preemptions suffered:  <none>")
    if given:
        rows = [[_since(g.get("time"), now), g.get("victim"), g.get("priority"),
                 g.get("instances"), g.get("reason")] for g in given if isinstance(g, dict)]
        body = render_table(["Time", "Victim", "Priority", "Instances", "Reason"], rows)
        lines += ["Preemptions given:"] + ["  " + line for line in body.splitlines()]
    else:
        lines.append("Preemptions given:     <none>")
    return lines


def _tolerances(spec: Obj) -> str:
    """``0.1`` or ``scale up 0.05, scale down 0.1``: per-direction tolerances fall back to
    ``spec.tolerance``, then to the controller's default."""
    base = spec.get("tolerance")
    shown = "<controller default>" if base is None else str(base)
    up = _get(spec, "behavior", "scaleUp", "tolerance")
    down = _get(spec, "behavior", "scaleDown", "tolerance")
    if up is None and down is None:
        return shown
    return (f"scale up {shown if up is None else up}, "
            f"scale down {shown if down is None else down}")


def describe_hpa(obj: Obj, now: float | None = None) -> str:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    lines = _metadata(obj, now) + [
        "Spec:",
        _field("Reference", f"{ref.get('kind')}/{ref.get('name')}", 2),
        _field("Min replicas", spec.get("minReplicas"), 2),
        _field("Max replicas", spec.get("maxReplicas"), 2),
        _field("Metrics", hpa_targets(obj), 2),
        _field("Tolerance", _tolerances(spec), 2),
        _field("Paused", spec.get("paused"), 2),
        "Status:",
        _field("Current replicas", status.get("currentReplicas"), 2),
        _field("Desired replicas", status.get("desiredReplicas"), 2),
        _field("Last scale time", status.get("lastScaleTime"), 2),
    ]
    # Each decision's reason gives every metric's figure and its inputs, e.g.
    # "cpu: 72%/50% (3 counted, 1 missing, 0 unready)"; the current one is in the
    # ScalingActive message below.
    events = status.get("scaleEvents") or []
    if events:
        rows = [[format_age(e.get("timestamp"), now), e.get("replicaChange"), e.get("reason")]
                for e in events[-10:]]
        lines += ["Last scale decisions:"] + [
            "  " + line for line in render_table(["Age", "Change", "Reason"], rows).splitlines()]
    else:
        lines.append("Last scale decisions:  <none>")
    recs = status.get("recommendations") or []
    if recs:
        shown = ", ".join(f"{r.get('replicas')} ({format_age(r.get('timestamp'), now)} ago)"
                          for r in recs[-5:])
        lines.append(_field("Recommendations", shown))
    return "\n".join(lines + _conditions(obj, now))


DESCRIBERS: dict[str, Callable[[Obj, float | None], str]] = {
    "ECSMService": describe_service,
    "ECSMHpa": describe_hpa,
}
