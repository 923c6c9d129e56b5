"""The ECSM wire contract as schemas, written from ecsm-api.md (§1.6, §3-§6).

Notation: ``"str" "int" "num" "bool" "any"`` (JSON types; ``int`` rejects floats and
booleans), ``"bool|str"`` either, ``NULL(x)`` = x or null, ``[x]`` = array of x, a dict =
object whose keys must all be present, except keys ending in ``?`` (omitted when empty).
No other keys are allowed: drift on either side fails the contract test.
"""

from __future__ import annotations

from typing import Any


def NULL(schema: Any) -> tuple[str, Any]:  # noqa: N802 - reads like the notation
    return ("null", schema)


S, I, N, B, ANY = "str", "int", "num", "bool", "any"  # noqa: E741 - reads like the notation

ENVELOPE = {"status": I, "message": S, "data": ANY, "fieldErrors": NULL(S)}


def PAGE(item: Any) -> dict[str, Any]:  # noqa: N802
    return {"total": I, "pageNum": I, "pageSize": I, "list": [item]}


KERNEL_OBJECT = {k: I for k in ("threadLimit", "threadPoolLimit", "eventLimit", "eventSetLimit",
                                "partitionLimit", "regionLimit", "msgQueueLimit", "timerLimit")}
KERNEL_OBJECT.update({f"{k}?": I for k in (
    "rmsLimit", "threadVarLimit", "posixMqueueLimit", "dlopenLibraryLimit", "xsiipcLimit",
    "socketLimit", "srtpLimit", "deviceLimit")})
SYLIXOS = {
    "devices?": [{"path": S, "access": S}],
    "resources": NULL({"cpu": NULL({"highestPrio": I, "lowestPrio": I}),
                       "memory": NULL({"kheapLimit": I, "memoryLimitMB": I}),
                       "disk": NULL({"limitMB": I}),
                       "kernelObject": NULL(KERNEL_OBJECT)}),
    "network": NULL({"ftpdEnable": B, "telnetdEnable": B}),
    "commands": NULL([S]),
}
ECS_IMAGE_CONFIG = {
    "platform?": {"os": S, "arch": S},
    "process?": {"args": NULL([S]), "env": NULL([S]), "cwd": S},
    "root?": {"path": S, "readonly": B},
    "hostname?": S,
    "mounts?": [{"destination": S, "source": S, "options": NULL([S])}],
    "sylixos?": SYLIXOS,
}
VSOA = {"password?": S, "port?": I, "healthPath?": S, "healthTimeout?": I,
        "healthRetries?": I, "healthStartPeriod?": I, "healthInterval?": I}
IMAGE_SPEC = {"ref": S, "action": S, "config": NULL(ECS_IMAGE_CONFIG), "vsoa?": VSOA,
              "pullPolicy?": S, "autoUpgrade?": S}
IMAGE_LIST_ENTRY = {"name": S, "os": S, "tag": S}
SERVICE_NODE_INFO = {"nodeId": S, "nodeName": S, "address": S}
ERROR_INSTANCE = {"containerId": S, "nodeId": S, "nodeName": S, "status": "bool|str",
                  "message": S}
SERVICE_ROW = {
    "id": S, "name": S, "status": S, "updatedTime": S, "createdTime": S,
    "imageList": [IMAGE_LIST_ENTRY], "nodeList": [SERVICE_NODE_INFO],
    "containerStatusGroup": [S], "factor": I, "policy": S, "errorInstance": [ERROR_INSTANCE],
    "instanceOnline": I, "defaultLabels": [S], "pathLabel": S,
}
SERVICE_DETAIL = {
    "id": S, "name": S, "status": S, "containerStatusGroup": [S], "healthy": B, "factor": I,
    "policy": S, "instanceOnline": I, "instanceActive": I, "createdTime": S, "updatedTime": S,
    "image": NULL(IMAGE_SPEC), "node?": {"names": NULL([S])}, "nodeList": [SERVICE_NODE_INFO],
}
CREATE_RESULT = {"id": S, "containers": [S]}
DELETE_RESULT = {"transactionId": S}
TRANSACTION = {"id": S, "status": S, "data": ANY, "timestamp": I}
CONTAINER_INFO = {
    "id": S, "taskId": S, "name": S, "status": S, "uptime": I, "startedTime": S,
    "createdTime": S, "taskCreatedTime": S, "deployStatus": S, "failedMessage": NULL(S),
    "restartCnt": I, "deployNum": I, "cpuUsage": {"total": N, "cores": [N]},
    "memoryLimit": I, "memoryUsage": I, "memoryMaxUsage": I, "sizeUsage": I, "sizeLimit": I,
    "serviceId": S, "serviceName": S, "nodeId": S, "address": S, "nodeName": S,
    "nodeArch": S, "imageId": S, "imageName": S, "imageVersion": S, "imageOS": S,
    "imageArch": S,
}
HISTORY_ITEM = {"id": S, "cmd": S, "user": S, "time": S}
NODE_INFO = {
    "id": S, "address": S, "name": S, "password": S, "status": S, "type": S, "tls": B,
    "containerTotal": I, "containerRunning": I, "containerEcsmTotal": I,
    "containerEcsmRunning": I, "upTime": N, "createdTime": S, "arch": S,
}
NODE_BY_ID = {"id": S, "address": S, "name": S, "password": S, "tls": B, "type": S,
              "createdTime": S, "arch": S, "ecsdVersion": S}
NODE_BY_NAME = {"id": S, "ip": S, "port": I, "name": S, "password": S, "tls": I, "type": S,
                "createdTime": S, "arch": S}
NODE_STATUS = {
    "id": S, "status": S, "memoryTotal": I, "memoryFree": I, "diskTotal": N, "diskFree": N,
    "cpuUsage": {"total": N, "cores": [N], "measureTime": I}, "uptime": N,
    "processCount": I, "containerTotal": I, "containerRunning": I, "containerEcsmTotal": I,
    "containerEcsmRunning": I, "net": [{"networkName": S, "upNet": N, "downNet": N}],
    "time": {"current": I, "uptime": N, "timezone": S, "timezoneName": S, "date": S},
}
NODE_STATUS_LIST = {"nodes": [NODE_STATUS]}
NODE_VIEW = {
    "id": S, "status": S, "type": S, "name": S, "ip?": S, "arch?": S,
    "children": [{"id": S, "name": S, "node_id": S, "pro_id": S, "type": S, "status": S,
                  "children": [{"id": S, "status": S, "name": S, "type": S, "health": B}]}],
}
PERCENT = {"percent": S}
SIZED = {"percent": S, "size": N}
NET_VALUE = {"networkName": S, "value": N}
NODE_METRICS = {
    "timestamp": I, "type": S, "cpu": PERCENT, "rom": SIZED, "ram": SIZED, "processCount": I,
    "process": [{"name": S, "cpu": PERCENT, "ram": SIZED}], "upNet": [NET_VALUE],
    "downNet": [NET_VALUE], "upTime": N, "running": I, "stop": I,
}
TYPE_UPDATE = {"id": S, "ip": S, "port": I, "name": S, "type": S, "newType": S}
DELETE_CONFLICT = {"id": S, "name": S, "serves": [{"id": S, "name": S}]}
IMAGE_ITEM = {"id": S, "name": S, "os": S, "createdTime": S, "tag": S, "size": N,
              "author": NULL(S), "arch": S, "pulled": B, "description": S, "ociVersion": S}
IMAGE_DETAILS = {
    "id": S, "name": S, "path": S, "os": S, "arch": S, "createdTime": S, "size": N,
    "author": NULL(S), "rawConfig": S, "config": NULL(ECS_IMAGE_CONFIG), "ociVersion": S,
    "hostname": NULL(S), "tag": S, "pulled": B, "delete": B,
}
IMAGE_SUMMARY = {"local": I, "remote": I}
IMAGE_CONFIG = {"config": ECS_IMAGE_CONFIG}
REPOSITORY = {"count": I, "registryId": S, "registryName": S, "status?": B, "standard?": B}

_SCALARS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "num": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "bool|str": lambda v: isinstance(v, (bool, str)),
    "any": lambda v: True,
}


def violations(value: Any, schema: Any, path: str = "data") -> list[str]:
    """Every place where ``value`` breaks ``schema`` (empty when it conforms)."""
    if isinstance(schema, tuple):
        return [] if value is None else violations(value, schema[1], path)
    if isinstance(schema, str):
        return [] if _SCALARS[schema](value) else [f"{path}: expected {schema}, got {value!r:.60}"]
    if isinstance(schema, list):
        if not isinstance(value, list):
            return [f"{path}: expected array, got {value!r:.60}"]
        return [v for i, item in enumerate(value) for v in violations(item, schema[0],
                                                                       f"{path}[{i}]")]
    if not isinstance(value, dict):
        return [f"{path}: expected object, got {value!r:.60}"]
    out = []
    keys = {k.rstrip("?"): k for k in schema}
    for bare, key in keys.items():
        if bare not in value:
            if not key.endswith("?"):
                out.append(f"{path}.{bare}: missing")
            continue
        out += violations(value[bare], schema[key], f"{path}.{bare}")
    out += [f"{path}.{k}: not in the contract" for k in value if k not in keys]
    return out
