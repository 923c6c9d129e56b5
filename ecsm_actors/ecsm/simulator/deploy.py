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
* capacity (:mod:`.capacity`): a new instance goes only where its memory limit fits —
  static: its listed node; dynamic: the pool's nodes with room, spread as usual. One that
  fits nowhere is recorded refused (``exited``, ``deployStatus: failed``, a message);
  an update places refused instances again when room has come back. Scaling down removes
  refused instances first (they are not running).
"""

from __future__ import annotations

from collections import Counter

from ecsm_actors.ecsm.simulator import capacity
from ecsm_actors.ecsm.simulator.bodies import ServiceBody
from ecsm_actors.ecsm.simulator.errors import SimError, bad_request
from ecsm_actors.ecsm.simulator.model import STOP, ContainerRec, NodeRec, ServiceRec
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


def eligible(state: State, svc: ServiceRec) -> list[NodeRec]:
    """The nodes an instance of ``svc`` may be placed on now: its listed nodes (all nodes
    when a dynamic service lists none); for a dynamic service, the live ones among them
    when any is live."""
    nodes = [n for n in (state.node_named(name) for name in svc.node_names) if n is not None]
    if svc.policy == "static":
        return nodes
    pool = nodes or list(state.nodes.values())
    return [n for n in pool if n.online] or pool


def reconcile(state: State, svc: ServiceRec, nodes: list[NodeRec]) -> None:
    """Add/remove containers of ``svc`` so they match its policy, nodes and factor."""
    now = state.clock()
    current = state.containers_of(svc.id)
    action = str(svc.image.get("action") or "run")
    if svc.policy == "static":
        wanted = {n.id for n in nodes}
        seen: set[str] = set()
        for c in current:
            if c.node_id not in wanted or c.node_id in seen:
                state.remove_container(c)
            elif c.refused:
                capacity.retry(state, c, [state.nodes[c.node_id]], action)
            seen.add(c.node_id)
        for node in nodes:
            if node.id not in seen:
                _new_container(state, svc, [node], now)
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
    for c in state.containers_of(svc.id):
        if c.refused:
            capacity.retry(state, c, up or pool, action)
    for _ in range(svc.factor - len(state.containers_of(svc.id))):
        _new_container(state, svc, up or pool, now)


def _new_container(state: State, svc: ServiceRec, candidates: list[NodeRec],
                   now: float) -> ContainerRec:
    """One new instance on the candidate chosen by :func:`spread` among those with room
    (refused, on the one chosen among all candidates, when none has room)."""
    need = capacity.memory_limit(state, svc)
    roomy = [n for n in candidates if capacity.fits(state, n, need)]
    overall = Counter({n.id: len(state.by_node.get(n.id, ())) for n in candidates})
    mine = state.containers_of(svc.id)
    node = spread(roomy or candidates, mine, 1, overall)[0]
    image = state.service_image(svc)
    c = ContainerRec(
        id=new_id(), task_id=new_id(), name=f"{svc.name}-{state.next_seq()}",
        service_id=svc.id, node_id=node.id, image_id=image.id if image else "",
        state=STOP, created_at=now, ready_at=now + state.start_delay)
    state.add_container(c)
    if roomy:
        capacity.deploy(state, c, node, str(svc.image.get("action") or "run"))
    else:
        capacity.refuse(c, capacity.refusal(state, need, candidates))
    return c

