"""Service create / update / delete and the container reconciliation behind them (§11).

Runs inside the simulator process, always under ``State.lock``. Rules:

* create: unique name ("name exists" otherwise), known image ref, known node names
  (400 with ``fieldErrors`` naming them); static → one container per listed node,
  dynamic → ``factor`` containers spread over the listed nodes that are up. Containers
  start ``created`` and are ``running`` after the start delay; ``load`` leaves them ``stop``.
* update: replace name, image, node, factor, policy; an image change (ref, action, config,
  ...) replaces every container; otherwise containers are added/removed to match. A
  dynamic container on an offline node is re-placed on an up node of the pool by an
  update — never by the simulator on its own.
* delete: removes the containers, answers ``{transactionId}``.
"""

from __future__ import annotations

from collections import Counter

from ecsm_actors.ecsm.simulator.bodies import ServiceBody
from ecsm_actors.ecsm.simulator.errors import SimError, bad_request
from ecsm_actors.ecsm.simulator.model import CREATED, STOP, ContainerRec, NodeRec, ServiceRec
from ecsm_actors.ecsm.simulator.placement import spread, victims
from ecsm_actors.ecsm.simulator.state import State, new_id


def _check_refs(state: State, body: ServiceBody) -> list[NodeRec]:
    """The named nodes, in order; 400 naming every unknown node or image."""
    problems = []
    if state.image_for_ref(str(body.image.get("ref"))) is None:
        problems.append(f"image.ref: image '{body.image.get('ref')}' not found in "
                        "registry 'local'")
    nodes = []
    for name in body.node_names:
        node = state.node_named(name)
        if node is None:
            problems.append(f"node.names: node '{name}' not found")
        elif node not in nodes:
            nodes.append(node)
    if problems:
        raise bad_request("; ".join(problems))
    return nodes


def _labels(name: str) -> tuple[list[str], str]:
    return [f"app={name}"], f"/default/{name}"


def create_service(state: State, body: ServiceBody) -> tuple[ServiceRec, list[str]]:
    if state.service_named(body.name) is not None:
        raise SimError(400, "name exists", f"name: service '{body.name}' already exists")
    nodes = _check_refs(state, body)
    now = state.clock()
    labels, path = _labels(body.name)
    factor = len(nodes) if body.policy == "static" else (
        body.factor if body.factor is not None else 1)
    svc = ServiceRec(id=new_id(), name=body.name, created_at=now, updated_at=now,
                     factor=factor, policy=body.policy, prepull=body.prepull,
                     image=body.image, node_names=list(body.node_names),
                     default_labels=labels, path_label=path)
    state.services[svc.id] = svc
    state.by_service[svc.id] = {}
    reconcile(state, svc, nodes)
    state.changed()
    return svc, list(state.by_service[svc.id])


def update_service(state: State, body: ServiceBody) -> tuple[ServiceRec, list[str]]:
    svc = state.service(body.id)
    other = state.service_named(body.name)
    if other is not None and other.id != svc.id:
        raise SimError(400, "name exists", f"name: service '{body.name}' already exists")
    nodes = _check_refs(state, body)
    replace = body.image != svc.image
    svc.name = body.name
    svc.image = body.image
    svc.node_names = list(body.node_names)
    svc.policy = body.policy
    if body.policy == "static":
        svc.factor = len(nodes)
    elif body.factor is not None:
        svc.factor = body.factor
    svc.default_labels, svc.path_label = _labels(body.name)
    svc.updated_at = state.clock()
    if replace:
        for c in state.containers_of(svc.id):
            state.remove_container(c)
    reconcile(state, svc, nodes)
    state.changed()
    return svc, list(state.by_service[svc.id])


def delete_service(state: State, service_id: str) -> str:
    svc = state.service(service_id)
    for c in state.containers_of(svc.id):
        state.remove_container(c)
    del state.services[svc.id]
    state.by_service.pop(svc.id, None)
    tx = state.add_transaction("success", {"serviceId": service_id})
    state.changed()
    return str(tx["id"])


def reconcile(state: State, svc: ServiceRec, nodes: list[NodeRec]) -> None:
    """Add/remove containers of ``svc`` so they match its policy, nodes and factor."""
    now = state.clock()
    current = state.containers_of(svc.id)
    if svc.policy == "static":
        wanted = {n.id for n in nodes}
        seen: set[str] = set()
        for c in current:
            if c.node_id not in wanted or c.node_id in seen:
                state.remove_container(c)
            seen.add(c.node_id)
        for node in nodes:
            if node.id not in seen:
                _new_container(state, svc, node, now)
        return
    pool = nodes or list(state.nodes.values())
    pool_ids = {n.id for n in pool}
    up = [n for n in pool if n.online]
    for c in current:
        if c.node_id not in pool_ids or (up and not state.nodes[c.node_id].online):
            state.remove_container(c)
    current = state.containers_of(svc.id)
    for c in victims(current, len(current) - svc.factor, now):
        state.remove_container(c)
    missing = svc.factor - len(state.containers_of(svc.id))
    overall = Counter({nid: len(cs) for nid, cs in state.by_node.items()})
    for node in spread(up or pool, state.containers_of(svc.id), missing, overall):
        _new_container(state, svc, node, now)


def _new_container(state: State, svc: ServiceRec, node: NodeRec, now: float) -> ContainerRec:
    image = state.service_image(svc)
    action = svc.image.get("action") or "run"
    c = ContainerRec(
        id=new_id(), task_id=new_id(), name=f"{svc.name}-{state.next_seq()}",
        service_id=svc.id, node_id=node.id, image_id=image.id if image else "",
        state=CREATED if action == "run" and node.online else STOP,
        created_at=now, ready_at=now + state.start_delay,
        stopped_by_node=action == "run" and not node.online)
    state.add_container(c)
    return c

