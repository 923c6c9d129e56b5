"""Simulator handlers of the service and container endpoints (§3, §4).

Runs inside the simulator process; each handler is called under ``State.lock`` with the
current time and returns the envelope's ``data`` (or raises SimError).
"""

from __future__ import annotations

from typing import Any

from ecsm_actors.ecsm.simulator import actions, bodies, deploy, views
from ecsm_actors.ecsm.simulator.request import Request, page
from ecsm_actors.ecsm.simulator.state import State


def create_service(state: State, req: Request, now: float) -> dict[str, Any]:
    svc, containers = deploy.create_service(state, bodies.service_body(req.body, update=False))
    return {"id": svc.id, "containers": containers}


def list_services(state: State, req: Request, now: float) -> dict[str, Any]:
    name, image_id = req.arg("name"), req.arg("id")
    node_id, label = req.arg("nodeId"), req.arg("label")
    items = []
    for svc in state.services.values():
        if name and name not in svc.name:
            continue
        if image_id:
            image = state.service_image(svc)
            if image is None or image.id != image_id:
                continue
        if node_id and not _on_node(state, svc, node_id):
            continue
        if label and label not in svc.path_label and not any(
                label in lb for lb in svc.default_labels):
            continue
        items.append(svc)
    return page(req, items, lambda s: views.service_row(state, s, now))


def _on_node(state: State, svc: Any, node_id: str) -> bool:
    if any(c.node_id == node_id for c in state.containers_of(svc.id)):
        return True
    node = state.nodes.get(node_id)
    return node is not None and node.name in svc.node_names


def get_service(state: State, req: Request, now: float, service_id: str) -> dict[str, Any]:
    return views.service_detail(state, state.service(service_id), now)


def update_service(state: State, req: Request, now: float) -> dict[str, Any]:
    svc, containers = deploy.update_service(state, bodies.service_body(req.body, update=True))
    return {"id": svc.id, "containers": containers}


def delete_service(state: State, req: Request, now: float, service_id: str) -> dict[str, Any]:
    return {"transactionId": deploy.delete_service(state, service_id)}


def service_action(state: State, req: Request, now: float) -> dict[str, Any]:
    service_id, action = bodies.action_body(req.body, "serviceId")
    return actions.service_action(state, service_id, action)


def get_container(state: State, req: Request, now: float, task_id: str) -> dict[str, Any]:
    return views.container(state, state.container_by_task(task_id), now)


def _containers_page(state: State, req: Request, now: float, ids: list[str],
                     index: dict[str, dict[str, None]]) -> dict[str, Any]:
    key = req.arg("key") or ""
    items = []
    seen: set[str] = set()
    for owner in ids:
        for cid in index.get(owner, ()):
            if cid not in seen and key in state.containers[cid].name:
                seen.add(cid)
                items.append(state.containers[cid])
    running: dict[str, int] = {}

    def render(c: Any) -> dict[str, Any]:
        if c.service_id not in running:
            running[c.service_id] = views.running_count(state, c.service_id, now)
        return views.container(state, c, now, running[c.service_id])
    return page(req, items, render)


def containers_by_service(state: State, req: Request, now: float) -> dict[str, Any]:
    return _containers_page(state, req, now, req.args("serviceIds"), state.by_service)


def containers_by_node(state: State, req: Request, now: float) -> dict[str, Any]:
    return _containers_page(state, req, now, req.args("nodeIds"), state.by_node)


def container_action(state: State, req: Request, now: float) -> dict[str, Any]:
    name, action = bodies.action_body(req.body, "id")
    return actions.container_action(state, name, action)


def container_history(state: State, req: Request, now: float) -> dict[str, Any]:
    entries = state.history.get(req.arg("id") or "", [])
    return page(req, entries, dict)
