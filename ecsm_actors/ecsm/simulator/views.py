"""Wire views of the simulator's records, derived from the containers at every read.

Runs inside the simulator process under ``State.lock``. Nothing here is stored: service
``instanceOnline``/``instanceActive``/``containerStatusGroup``, node ``containerEcsm*``
counts, metrics ``running``/``stop`` and usage figures are computed from the containers
each time, so every view agrees with every other at every read.

Usage model: a running container's ``cpuUsage.total`` ≈ service cpu load ÷ running
instances (±3 % noise) and ``memoryUsage`` ≈ memory load ÷ running instances;
``memoryLimit`` = ``memoryLimitMB`` of the service config (of the image's built-in config
when the service sends none; else ``simulator.default_memory_limit``). Node memory
figures are the reservations of :mod:`.capacity`: ``memoryTotal`` = the node's container
memory, ``memoryFree`` = total − reserved, metrics ``ram`` = reserved bytes and percent.
A refused container shows ``deployStatus: failed`` (``success`` otherwise).
"""

from __future__ import annotations

import json
from typing import Any

from ecsm_actors.ecsm.simulator import capacity
from ecsm_actors.ecsm.simulator.model import (
    MIB,
    RUNNING,
    ContainerRec,
    ImageRec,
    NodeRec,
    ServiceRec,
    fmt_rfc3339,
    fmt_time,
)
from ecsm_actors.ecsm.simulator.state import State

DEFAULT_DISK_LIMIT = 1024 * MIB
DISK_USAGE = 48 * MIB
NOISE = 0.03


def running_count(state: State, svc_id: str, now: float) -> int:
    return sum(1 for c in state.containers_of(svc_id) if c.status(now) == RUNNING)


def usage(state: State, c: ContainerRec, now: float, running: int | None = None
          ) -> tuple[float, int, int]:
    """(cpu percent, memory bytes, memory limit bytes) of one container."""
    svc = state.services[c.service_id]
    limit = capacity.memory_limit(state, svc)
    if c.status(now) != RUNNING:
        return 0.0, 0, limit
    n = running if running is not None else running_count(state, svc.id, now)
    noise = state.rng.uniform(1 - NOISE, 1 + NOISE)
    cpu = round(max(svc.load_cpu, 0.0) / max(n, 1) * noise, 2)
    memory = int(max(svc.load_memory, 0) / max(n, 1) * noise)
    return cpu, memory, limit


def container(state: State, c: ContainerRec, now: float, running: int | None = None
              ) -> dict[str, Any]:
    svc = state.services[c.service_id]
    node = state.nodes[c.node_id]
    image = state.images.get(c.image_id)
    status = c.status(now)
    started = c.started(now)
    cpu, memory, limit = usage(state, c, now, running)
    cores = node.cpu_cores
    return {
        "id": c.id, "taskId": c.task_id, "name": c.name, "status": status,
        "uptime": int(now - started) if status == RUNNING and started else 0,
        "startedTime": fmt_time(started) if started else "",
        "createdTime": fmt_time(c.created_at), "taskCreatedTime": fmt_time(c.created_at),
        "deployStatus": capacity.FAILED if c.refused else "success",
        "failedMessage": c.failed_message,
        "restartCnt": c.restart_cnt, "deployNum": c.deploy_num,
        "cpuUsage": {"total": cpu, "cores": [round(cpu / cores, 2)] * cores},
        "memoryLimit": limit, "memoryUsage": memory, "memoryMaxUsage": int(memory * 1.1),
        "sizeUsage": DISK_USAGE if status != "created" and not c.refused else 0,
        "sizeLimit": capacity.limit_mb(capacity.resources(state, svc), "disk", "limitMB",
                                       DEFAULT_DISK_LIMIT),
        "serviceId": svc.id, "serviceName": svc.name,
        "nodeId": node.id, "address": node.address, "nodeName": node.name,
        "nodeArch": node.arch,
        "imageId": c.image_id, "imageName": image.name if image else "",
        "imageVersion": image.tag if image else "", "imageOS": image.os if image else "",
        "imageArch": image.arch if image else "",
    }


def containers(state: State, items: list[ContainerRec], now: float) -> list[dict[str, Any]]:
    running: dict[str, int] = {}
    out = []
    for c in items:
        if c.service_id not in running:
            running[c.service_id] = running_count(state, c.service_id, now)
        out.append(container(state, c, now, running[c.service_id]))
    return out


def _image_list(svc: ServiceRec) -> list[dict[str, str]]:
    ref = str(svc.image.get("ref") or "")
    body, _, os_ = ref.partition("#")
    name, _, tag = body.partition("@")
    return [{"name": name, "os": os_, "tag": tag}] if ref else []


def _node_list(state: State, svc: ServiceRec) -> list[dict[str, str]]:
    """The named nodes (a dynamic service without names: the nodes it runs on)."""
    if svc.node_names:
        nodes = [state.node_named(name) for name in svc.node_names]
    else:
        nodes = [state.nodes[c.node_id] for c in state.containers_of(svc.id)]
    out, seen = [], set()
    for node in nodes:
        if node is not None and node.id not in seen:
            seen.add(node.id)
            out.append({"nodeId": node.id, "nodeName": node.name, "address": node.address})
    return out


def _summary(state: State, svc: ServiceRec, now: float) -> dict[str, Any]:
    items = state.containers_of(svc.id)
    statuses = [c.status(now) for c in items]
    errors = [{"containerId": c.id, "nodeId": c.node_id,
               "nodeName": state.nodes[c.node_id].name, "status": False,
               "message": c.failed_message or ""}
              for c, s in zip(items, statuses, strict=True) if s == "exited"]
    online = statuses.count(RUNNING)
    return {"statuses": statuses, "errors": errors, "online": online, "active": len(items),
            "healthy": online == len(items) and len(items) >= svc.factor}


def service_row(state: State, svc: ServiceRec, now: float) -> dict[str, Any]:
    s = _summary(state, svc, now)
    return {
        "id": svc.id, "name": svc.name, "status": "complete",
        "updatedTime": fmt_time(svc.updated_at), "createdTime": fmt_time(svc.created_at),
        "imageList": _image_list(svc), "nodeList": _node_list(state, svc),
        "containerStatusGroup": s["statuses"], "factor": svc.factor, "policy": svc.policy,
        "errorInstance": s["errors"], "instanceOnline": s["online"],
        "defaultLabels": list(svc.default_labels), "pathLabel": svc.path_label,
    }


def service_detail(state: State, svc: ServiceRec, now: float) -> dict[str, Any]:
    s = _summary(state, svc, now)
    return {
        "id": svc.id, "name": svc.name, "status": "complete",
        "containerStatusGroup": s["statuses"], "healthy": s["healthy"],
        "factor": svc.factor, "policy": svc.policy, "instanceOnline": s["online"],
        "instanceActive": s["active"], "createdTime": fmt_time(svc.created_at),
        "updatedTime": fmt_time(svc.updated_at), "image": svc.image,
        "node": {"names": list(svc.node_names)}, "nodeList": _node_list(state, svc),
    }


def _counts(state: State, node: NodeRec, now: float) -> tuple[int, int]:
    items = state.containers_on(node.id)
    return len(items), sum(1 for c in items if c.status(now) == RUNNING)


def node_info(state: State, node: NodeRec, now: float) -> dict[str, Any]:
    total, running = _counts(state, node, now)
    return {
        "id": node.id, "address": node.address, "name": node.name,
        "password": node.password, "status": node.status, "type": node.type,
        "tls": node.tls, "containerTotal": total, "containerRunning": running,
        "containerEcsmTotal": total, "containerEcsmRunning": running,
        "upTime": round(now - node.boot_at, 3) if node.online else 0.0,
        "createdTime": fmt_time(node.created_at), "arch": node.arch,
    }


def node_by_id(node: NodeRec) -> dict[str, Any]:
    return {"id": node.id, "address": node.address, "name": node.name,
            "password": node.password, "tls": node.tls, "type": node.type,
            "createdTime": fmt_time(node.created_at), "arch": node.arch,
            "ecsdVersion": node.ecsd_version}


def node_by_name(node: NodeRec) -> dict[str, Any]:
    return {"id": node.id, "ip": node.ip, "port": node.port, "name": node.name,
            "password": node.password, "tls": 1 if node.tls else 0, "type": node.type,
            "createdTime": fmt_time(node.created_at), "arch": node.arch}


def node_cpu(state: State, node: NodeRec, now: float) -> float:
    """CPU percent of the node from its running containers."""
    cpu = 0.0
    for c in state.containers_on(node.id):
        cpu += usage(state, c, now)[0]
    return round(min(100.0, 2.0 + cpu / node.cpu_cores), 2) if node.online else 0.0


def node_status(state: State, node: NodeRec, now: float) -> dict[str, Any]:
    total, running = _counts(state, node, now)
    cpu = node_cpu(state, node, now)
    memory = capacity.node_figures(state, node)
    uptime = round(now - node.boot_at, 3) if node.online else 0.0
    return {
        "id": node.id, "status": node.status, "memoryTotal": memory["memoryTotal"],
        "memoryFree": memory["memoryFree"], "diskTotal": float(node.disk_mb),
        "diskFree": float(node.disk_mb - 512 - total * 48),
        "cpuUsage": {"total": cpu, "cores": [cpu] * node.cpu_cores,
                     "measureTime": int(now * 1000)},
        "uptime": uptime, "processCount": 20 + 3 * running,
        "containerTotal": total, "containerRunning": running,
        "containerEcsmTotal": total, "containerEcsmRunning": running,
        "net": [{"networkName": "en1", "upNet": 1.5 * running, "downNet": 2.5 * running}],
        "time": {"current": int(now * 1000), "uptime": uptime, "timezone": "UTC+00:00",
                 "timezoneName": "UTC", "date": fmt_time(now)},
    }


def node_view(state: State, node: NodeRec, now: float) -> dict[str, Any]:
    children = []
    for c in state.containers_on(node.id):
        svc = state.services[c.service_id]
        s = _summary(state, svc, now)
        children.append({
            "id": c.id, "name": c.name, "node_id": node.id, "pro_id": svc.id,
            "type": "container", "status": c.status(now),
            "children": [{"id": svc.id, "status": "complete", "name": svc.name,
                          "type": "provision", "health": s["healthy"]}]})
    return {"id": node.id, "status": node.status, "type": node.type, "name": node.name,
            "ip": node.ip, "arch": node.arch, "children": children}


def node_metrics(state: State, node: NodeRec, now: float) -> dict[str, Any]:
    total, running = _counts(state, node, now)
    cpu = node_cpu(state, node, now)
    memory = capacity.reserved(state, node)
    ram_percent = 100.0 * memory / node.memory_bytes if node.memory_bytes else 0.0
    used_mb = 512.0 + total * 48.0
    return {
        "timestamp": int(now * 1000), "type": node.type,
        "cpu": {"percent": f"{cpu:.1f}"},
        "rom": {"percent": f"{100.0 * used_mb / node.disk_mb:.1f}", "size": used_mb},
        "ram": {"percent": f"{ram_percent:.1f}", "size": memory},
        "processCount": 20 + 3 * running,
        "process": [{"name": "ecsd", "cpu": {"percent": "1.0"},
                     "ram": {"percent": "0.8", "size": 32 * MIB}}],
        "upNet": [{"networkName": "en1", "value": 1.5 * running}],
        "downNet": [{"networkName": "en1", "value": 2.5 * running}],
        "upTime": round(now - node.boot_at, 3) if node.online else 0.0,
        "running": running, "stop": total - running,
    }


def image_item(image: ImageRec) -> dict[str, Any]:
    return {"id": image.id, "name": image.name, "os": image.os,
            "createdTime": fmt_rfc3339(image.created_at), "tag": image.tag,
            "size": image.size, "author": image.author, "arch": image.arch,
            "pulled": image.pulled, "description": image.description,
            "ociVersion": image.oci_version}


def image_details(image: ImageRec) -> dict[str, Any]:
    return {"id": image.id, "name": image.name, "path": image.path, "os": image.os,
            "arch": image.arch, "createdTime": fmt_rfc3339(image.created_at),
            "size": image.size, "author": image.author,
            "rawConfig": json.dumps(image.config, separators=(",", ":")),
            "config": image.config, "ociVersion": image.oci_version,
            "hostname": image.hostname, "tag": image.tag, "pulled": image.pulled,
            "delete": image.delete}
