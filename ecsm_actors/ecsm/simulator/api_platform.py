"""Simulator handlers of the node, overview and image endpoints (§5, §6).

Runs inside the simulator process; each handler is called under ``State.lock`` with the
current time and returns the envelope's ``data`` (or raises SimError).
"""

from __future__ import annotations

from typing import Any

from ecsm_actors.ecsm.simulator import actions, bodies, views
from ecsm_actors.ecsm.simulator.errors import bad_request, not_found
from ecsm_actors.ecsm.simulator.request import Request, page
from ecsm_actors.ecsm.simulator.state import State

LOCAL_REGISTRY_NAME = "本地仓库"


def register_node(state: State, req: Request, now: float) -> None:
    actions.register_node(state, bodies.node_body(req.body, update=False))


def update_node(state: State, req: Request, now: float) -> None:
    actions.update_node(state, bodies.node_body(req.body, update=True))


def delete_nodes(state: State, req: Request, now: float) -> Any:
    return actions.delete_nodes(state, bodies.ids_body(req.body))


def check_name(state: State, req: Request, now: float) -> bool:
    return actions.exists(state, "name", req.arg("name") or "", req.arg("id"))


def check_address(state: State, req: Request, now: float) -> bool:
    return actions.exists(state, "address", req.arg("address") or "", req.arg("id"))


def refresh_types(state: State, req: Request, now: float) -> None:
    return None


def type_updates(state: State, req: Request, now: float) -> list[Any]:
    return []


def list_nodes(state: State, req: Request, now: float) -> dict[str, Any]:
    name = req.arg("name") or ""
    items = [n for n in state.nodes.values() if name in n.name]
    return page(req, items, lambda n: views.node_info(state, n, now))


def get_node(state: State, req: Request, now: float, node_id: str) -> dict[str, Any]:
    return views.node_by_id(state.node(node_id))


def get_node_by_name(state: State, req: Request, now: float, name: str) -> dict[str, Any]:
    node = state.node_named(name)
    if node is None:
        raise not_found("node", name)
    return views.node_by_name(node)


def node_status(state: State, req: Request, now: float) -> dict[str, Any]:
    ids = req.args("ids")
    return {"nodes": [views.node_status(state, state.nodes[i], now)
                      for i in ids if i in state.nodes]}


def node_view(state: State, req: Request, now: float, node_id: str) -> dict[str, Any]:
    return views.node_view(state, state.node(node_id), now)


def node_metrics(state: State, req: Request, now: float) -> list[dict[str, Any]]:
    node = state.nodes.get(req.arg("nodeId") or "")
    return [views.node_metrics(state, node, now)] if node is not None else []


def _images(state: State, req: Request) -> list[Any]:
    registry = req.arg("registryId") or ""
    name, os_, author = req.arg("name") or "", req.arg("os"), req.arg("author") or ""
    return [i for i in state.images.values()
            if (not registry or i.registry_id == registry) and name in i.name
            and (not os_ or i.os == os_) and (not author or author in (i.author or ""))]


def list_images(state: State, req: Request, now: float) -> dict[str, Any]:
    return page(req, _images(state, req), views.image_item)


def image_summary(state: State, req: Request, now: float) -> dict[str, int]:
    local = sum(1 for i in state.images.values() if i.registry_id == "local")
    return {"local": local, "remote": len(state.images) - local}


def image_config(state: State, req: Request, now: float) -> dict[str, Any]:
    ref = req.arg("ref")
    if not ref:
        raise bad_request("ref: required")
    image = state.image_for_ref(ref)
    if image is None:
        raise not_found("image", ref)
    return {"config": image.config}


def image_details(state: State, req: Request, now: float, registry_id: str,
                  image_id: str) -> dict[str, Any]:
    image = state.images.get(image_id)
    if image is None or image.registry_id != registry_id:
        raise not_found("image", image_id)
    return views.image_details(image)


def image_count(state: State, req: Request, now: float) -> list[dict[str, Any]]:
    images = _images(state, req)
    return [{"count": sum(1 for i in images if i.registry_id == "local"),
             "registryId": "local", "registryName": LOCAL_REGISTRY_NAME}]
