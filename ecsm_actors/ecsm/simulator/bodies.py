"""Validation of the request bodies the simulator accepts (ecsm-api.md §3.2, §3.5, §5).

Runs inside the simulator process. Bodies are checked the way a strict server would: a
wrong type or a missing required key answers status 400 with ``fieldErrors`` naming the
field; ``null`` is accepted for every array and object (§1.5). Returns normalized values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ecsm_actors.ecsm.simulator.errors import SimError, bad_request

POLICIES = ("static", "dynamic")
IMAGE_ACTIONS = ("run", "load")
ACTIONS = ("start", "stop", "restart", "pause", "unpause")


@dataclass(frozen=True, kw_only=True)
class ServiceBody:
    id: str
    name: str
    image: dict[str, Any]
    node_names: list[str]
    factor: int | None
    policy: str
    prepull: bool


def _obj(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("body: expected a JSON object")
    return body


def _str(doc: dict[str, Any], key: str, where: str, required: bool = True) -> str:
    value = doc.get(key)
    if value is None:
        if required:
            raise bad_request(f"{where}: required")
        return ""
    if not isinstance(value, str):
        raise bad_request(f"{where}: expected a string")
    return value


def _int(doc: dict[str, Any], key: str, where: str) -> int | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_request(f"{where}: expected an integer")
    if value < 0:
        raise bad_request(f"{where}: must not be negative")
    return value


def service_body(body: Any, *, update: bool) -> ServiceBody:
    doc = _obj(body)
    service_id = _str(doc, "id", "id") if update else ""
    name = _str(doc, "name", "name")
    if not name.strip():
        raise bad_request("name: must not be empty")
    image = doc.get("image")
    if not isinstance(image, dict):
        raise bad_request("image: expected an object")
    ref = _str(image, "ref", "image.ref")
    if not ref:
        raise bad_request("image.ref: required")
    action = _str(image, "action", "image.action", required=False) or "run"
    if action not in IMAGE_ACTIONS:
        raise bad_request(f"image.action: expected run or load, got '{action}'")
    for key in ("config", "vsoa"):
        if image.get(key) is not None and not isinstance(image[key], dict):
            raise bad_request(f"image.{key}: expected an object")
    node = doc.get("node")
    if node is not None and not isinstance(node, dict):
        raise bad_request("node: expected an object")
    names = (node or {}).get("names")
    if names is None:
        names = []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise bad_request("node.names: expected an array of strings")
    factor = _int(doc, "factor", "factor")
    policy = _str(doc, "policy", "policy", required=False) or "static"
    if policy not in POLICIES:
        raise bad_request(f"policy: expected static or dynamic, got '{policy}'")
    if policy == "static" and not names:
        raise bad_request("node.names: a static service needs at least one node")
    prepull = doc.get("prepull")
    if prepull is not None and not isinstance(prepull, bool):
        raise bad_request("prepull: expected a boolean")
    return ServiceBody(id=service_id, name=name, image=dict(image), node_names=list(names),
                       factor=factor, policy=policy, prepull=bool(prepull))


def action_body(body: Any, key: str) -> tuple[str, str]:
    """``{key: str, "action": str}`` of the container action endpoints."""
    doc = _obj(body)
    target = _str(doc, key, key)
    action = _str(doc, "action", "action")
    if action not in ACTIONS:
        raise bad_request(f"action: expected one of {', '.join(ACTIONS)}, got '{action}'")
    return target, action


def node_body(body: Any, *, update: bool) -> dict[str, Any]:
    doc = _obj(body)
    out: dict[str, Any] = {k: _str(doc, k, k) for k in ("address", "name")}
    out["password"] = _str(doc, "password", "password", required=False)
    if update:
        out["id"] = _str(doc, "id", "id")
    tls = doc.get("tls")
    if tls is not None and not isinstance(tls, bool):
        raise bad_request("tls: expected a boolean")
    out["tls"] = bool(tls)
    return out


def ids_body(body: Any) -> list[str]:
    ids = _obj(body).get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise bad_request("ids: expected an array of strings")
    return ids


def require(cond: bool, status: int, message: str) -> None:
    if not cond:
        raise SimError(status, message)
