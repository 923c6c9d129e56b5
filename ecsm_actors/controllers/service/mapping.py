"""ECSMService template → ECSM create/update bodies (``ecsm-api.md`` §3.2, §3.5, §9).

Runs inside the service-controller process. Pure functions over wire dicts: no I/O.

The container config sent to ECSM is the image's own config (``GET /image/config``)
OVERLAID with the template's fields, so keys the CRD cannot express (``process.cwd``,
``sylixos.commands``, ``kernelObject``…) keep the image's values. Invariants: the base
config is never mutated; ``process`` always carries ``args``/``env``/``cwd``;
``sylixos.resources`` always carries its four keys (null when unknown); memory and disk
limits are whole MiB, rounded up; enum words go lowercase where the wire is known to be
lowercase (``policy``, ``action``) and unchanged where the wire spelling is unknown
(``pullPolicy``, ``autoUpgrade``, A-26).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from ecsm_actors.api.quantity import to_mib
from ecsm_actors.errors import Invalid, TerminalError

#: Appended to an image ref without ``#os`` when the template names no platform os.
DEFAULT_OS = "sylixos"
Json = dict[str, Any]


def image_ref(template: Json) -> str:
    """``name@tag#os``: the template's image, with the os appended when it has none."""
    ref = str(template.get("image") or "")
    if "#" in ref:
        return ref
    platform = (template.get("platformSpecific") or {}).get("platform") or {}
    return f"{ref}#{platform.get('os') or DEFAULT_OS}"


def quantity_mib(value: Any, field: str) -> int:
    """A Kubernetes byte quantity (``512Mi``, ``1Gi``, ``100M``, bytes) → whole MiB, up."""
    try:
        return to_mib(value)
    except Invalid as e:
        raise TerminalError(f"{field}: invalid quantity {value!r}", reason="InvalidSpec") from e


def policy_of(spec: Json) -> str:
    """``static`` or ``dynamic`` from ``deploymentStrategy.type``."""
    kind = str((spec.get("deploymentStrategy") or {}).get("type") or "Dynamic")
    return kind.lower()


def action_of(template: Json) -> str:
    """``run`` (default) or ``load`` from ``platformSpecific.action``."""
    action = (template.get("platformSpecific") or {}).get("action") or "Run"
    return str(action).lower()


def _merge_env(base: Sequence[str] | None, env: Sequence[Json]) -> list[str]:
    out = [str(e) for e in base or ()]
    index = {e.partition("=")[0]: i for i, e in enumerate(out)}
    for item in env:
        entry = f"{item.get('name')}={item.get('value') if item.get('value') is not None else ''}"
        name = str(item.get("name"))
        if name in index:
            out[index[name]] = entry
        else:
            index[name] = len(out)
            out.append(entry)
    return out


def _merge_mounts(base: Sequence[Json] | None, mounts: Sequence[Json]) -> list[Json]:
    out = [dict(m) for m in base or ()]
    index = {m.get("destination"): i for i, m in enumerate(out)}
    for m in mounts:
        wire = {
            "destination": m.get("containerPath"),
            "source": m.get("hostPath"),
            "options": ["ro"] if m.get("readOnly") else ["rw"],
        }
        if wire["destination"] in index:
            out[index[wire["destination"]]] = wire
        else:
            index[wire["destination"]] = len(out)
            out.append(wire)
    return out


def _sylixos_block(config: Json) -> Json:
    block = config.get("sylixos")
    if not isinstance(block, dict):
        block = {"resources": None, "network": None, "commands": None}
        config["sylixos"] = block
    resources = block.get("resources")
    if not isinstance(resources, dict):
        resources = {}
        block["resources"] = resources
    for key in ("cpu", "memory", "disk", "kernelObject"):
        resources.setdefault(key, None)
    return block


def container_config(template: Json, base: Json | None, *, default_hostname: str) -> Json:
    """The ``image.config`` to send: ``base`` (the image's config) overlaid by ``template``."""
    config: Json = copy.deepcopy(base) if isinstance(base, dict) else {}
    base_process = config.get("process")
    process = base_process if isinstance(base_process, dict) else {}
    process = {"args": process.get("args"), "env": process.get("env"),
               "cwd": process.get("cwd") or "/"}
    if template.get("command"):
        process["args"] = [str(a) for a in template["command"]]
    if template.get("env"):
        process["env"] = _merge_env(process["env"], template["env"])
    process["args"] = process["args"] if process["args"] is not None else []
    process["env"] = process["env"] if process["env"] is not None else []
    config["process"] = process
    config["hostname"] = template.get("hostname") or default_hostname
    if template.get("volumeMounts"):
        config["mounts"] = _merge_mounts(config.get("mounts"), template["volumeMounts"])

    platform_specific = template.get("platformSpecific") or {}
    root = platform_specific.get("root") or {}
    if root.get("path"):
        config["root"] = {"path": root["path"], "readonly": bool(root.get("readOnly"))}
    platform = {k: v for k, v in (platform_specific.get("platform") or {}).items() if v}
    if platform:
        config["platform"] = {**(config.get("platform") or {}), **platform}

    limits = (template.get("resources") or {}).get("limits") or {}
    sylixos = platform_specific.get("sylixos") or {}
    if limits or sylixos:
        block = _sylixos_block(config)
        resources = block["resources"]
        memory = dict(resources.get("memory") or {})
        if limits.get("memory") is not None:
            memory["memoryLimitMB"] = quantity_mib(
                limits["memory"], "spec.template.resources.limits.memory")
        if (sylixos.get("memory") or {}).get("kheapLimit") is not None:
            memory["kheapLimit"] = int(sylixos["memory"]["kheapLimit"])
        if memory:
            resources["memory"] = memory
        if limits.get("disk") is not None:
            disk = dict(resources.get("disk") or {})
            disk["limitMB"] = quantity_mib(limits["disk"], "spec.template.resources.limits.disk")
            resources["disk"] = disk
        cpu = sylixos.get("cpu") or {}
        if cpu:
            resources["cpu"] = {**(resources.get("cpu") or {}),
                                **{k: int(v) for k, v in cpu.items() if v is not None}}
        if sylixos.get("devices"):
            block["devices"] = [{"path": d.get("path"), "access": d.get("access")}
                                for d in sylixos["devices"]]
        network = sylixos.get("network")
        if network:
            block["network"] = {"ftpdEnable": bool(network.get("ftpd")),
                                "telnetdEnable": bool(network.get("telnetd"))}
    return config


def vsoa_of(template: Json) -> Json | None:
    """``image.vsoa`` from ``template.vsoa`` (empty values omitted), or None."""
    vsoa = template.get("vsoa") or {}
    health = vsoa.get("healthCheck") or {}
    wire = {
        "password": vsoa.get("password"),
        "port": vsoa.get("port"),
        "healthTimeout": health.get("timeoutSeconds"),
        "healthRetries": health.get("failureThreshold"),
        "healthStartPeriod": health.get("initialDelaySeconds"),
        "healthInterval": health.get("periodSeconds"),
    }
    out = {k: v for k, v in wire.items() if v not in (None, "")}
    return out or None


def image_spec(spec: Json, base_config: Json | None, *, default_hostname: str) -> Json:
    """The ``image`` object (ImageSpec) of a create/update body."""
    template = spec.get("template") or {}
    image: Json = {
        "ref": image_ref(template),
        "action": action_of(template),
        "config": container_config(template, base_config, default_hostname=default_hostname),
    }
    vsoa = vsoa_of(template)
    if vsoa:
        image["vsoa"] = vsoa
    if template.get("imagePullPolicy"):
        image["pullPolicy"] = str(template["imagePullPolicy"])
    upgrade = (spec.get("upgradeStrategy") or {}).get("type")
    if upgrade:
        image["autoUpgrade"] = str(upgrade)
    return image


def create_body(spec: Json, *, ecsm_name: str, default_hostname: str, factor: int,
                node_names: Sequence[str], base_config: Json | None) -> Json:
    """POST ``/service`` body of one revision (§3.2); ``prepull`` only here (A-7)."""
    template = spec.get("template") or {}
    return {
        "name": ecsm_name,
        "image": image_spec(spec, base_config, default_hostname=default_hostname),
        "node": {"names": list(node_names)},
        "factor": int(factor),
        "policy": policy_of(spec),
        "prepull": bool(template.get("prepull", False)),
    }


def update_body(*, service_id: str, ecsm_name: str, image: Json, factor: int,
                node_names: Sequence[str], policy: str) -> Json:
    """PUT ``/service`` body (§3.5): the id travels in the body; no ``prepull``."""
    return {
        "id": service_id,
        "name": ecsm_name,
        "image": image,
        "node": {"names": list(node_names)},
        "factor": int(factor),
        "policy": policy,
    }
