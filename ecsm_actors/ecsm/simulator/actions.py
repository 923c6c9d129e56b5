"""Container actions, node operations and the admin-driven scenarios (§11 rules 4 and 6).

Runs inside the simulator process, always under ``State.lock``. Every action appends a
history entry ``{id: taskId, cmd, user, time}`` and answers a transaction. A container on
an offline node cannot be started (its transaction fails). Node down stops its containers
(and marks the node offline); node up restarts the ones it stopped. A crash leaves the
container ``exited`` with ``failedMessage`` set; nothing restarts it by itself. A
``start``/``restart``/``unpause`` of an instance refused for lack of memory places it
again (:mod:`.capacity`); when it still fits nowhere the transaction fails with the
reason. A node's memory can be changed at run time; nothing running is evicted and
nothing refused is placed by the change itself.
"""

from __future__ import annotations

from typing import Any

from ecsm_actors.ecsm.simulator import capacity
from ecsm_actors.ecsm.simulator.deploy import eligible
from ecsm_actors.ecsm.simulator.errors import SimError, bad_request, not_found
from ecsm_actors.ecsm.simulator.model import (
    CREATED,
    EXITED,
    PAUSED,
    RUNNING,
    STOP,
    ContainerRec,
    NodeRec,
)
from ecsm_actors.ecsm.simulator.state import State, new_id


def apply_action(state: State, c: ContainerRec, action: str, user: str = "admin"
                 ) -> str | None:
    """Apply one action to one container; the reason when it cannot (node offline, no
    room for a refused instance), else None."""
    now = state.clock()
    state.add_history(c, action, user)
    if c.refused:
        if action not in ("start", "restart", "unpause"):
            return None  # stop/pause of an instance that never started: nothing to do
        svc = state.services[c.service_id]
        candidates = [state.nodes[c.node_id]] if svc.policy == "static" else \
            eligible(state, svc)
        if not capacity.retry(state, c, candidates, "run"):
            return c.failed_message
        node = state.nodes[c.node_id]
        return None if node.online else f"node '{node.name}' is offline"
    status = c.status(now)
    node = state.nodes[c.node_id]
    if action in ("start", "restart", "unpause") and not node.online:
        return f"node '{node.name}' is offline"
    if action in ("start", "unpause"):
        if status != RUNNING:
            c.state, c.started_at, c.failed_message = RUNNING, now, None
    elif action == "restart":
        c.state, c.started_at, c.failed_message = RUNNING, now, None
        c.restart_cnt += 1
    elif action == "stop":
        c.state = STOP
    elif action == "pause":
        if status == RUNNING:
            c.started_at = c.started(now)
            c.state = PAUSED
    c.stopped_by_node = False
    return None


def service_action(state: State, service_id: str, action: str) -> dict[str, Any]:
    svc = state.service(service_id)
    results = [apply_action(state, c, action) for c in state.containers_of(svc.id)]
    failures = [r for r in results if r is not None]
    data: dict[str, Any] = {"serviceId": svc.id, "action": action}
    if failures:
        data["message"] = failures[0]
    tx = state.add_transaction("failure" if failures else "success", data)
    state.changed()
    return tx


def container_action(state: State, name: str, action: str) -> dict[str, Any]:
    c = state.container_named(name)
    failure = apply_action(state, c, action)
    data: dict[str, Any] = {"containerId": c.id, "name": c.name, "action": action}
    if failure is not None:
        data["message"] = failure
    tx = state.add_transaction("success" if failure is None else "failure", data)
    state.changed()
    return tx


def node_down(state: State, name: str) -> NodeRec:
    node = _node_named(state, name)
    now = state.clock()
    node.status = "offline"
    for c in state.containers_on(node.id):
        if c.status(now) in (RUNNING, CREATED, PAUSED):
            c.state, c.stopped_by_node = STOP, True
    state.changed()
    return node


def node_up(state: State, name: str) -> NodeRec:
    node = _node_named(state, name)
    now = state.clock()
    if not node.online:
        node.status, node.boot_at = "online", now
    for c in state.containers_on(node.id):
        if c.stopped_by_node:
            c.state, c.ready_at, c.stopped_by_node = CREATED, now + state.start_delay, False
    state.changed()
    return node


def set_node_memory(state: State, name: str, memory: int) -> NodeRec:
    """The node's container memory becomes ``memory`` bytes (running containers stay)."""
    node = _node_named(state, name)
    node.memory_bytes = memory
    state.changed()
    return node


def crash_container(state: State, name: str, message: str) -> ContainerRec:
    c = state.container_named(name)
    if c.refused:
        raise bad_request(f"container '{name}' was refused for lack of memory: "
                          "it is not running")
    c.state, c.failed_message, c.stopped_by_node = EXITED, message, False
    state.changed()
    return c


def delete_container(state: State, name: str) -> ContainerRec:
    c = state.container_named(name)
    state.remove_container(c)
    state.changed()
    return c


def set_load(state: State, service: str, cpu: float | None, memory: int | None) -> None:
    svc = state.services.get(service) or state.service_named(service)
    if svc is None:
        raise not_found("service", service)
    if cpu is not None:
        svc.load_cpu = float(cpu)
    if memory is not None:
        svc.load_memory = int(memory)
    state.changed()


def _node_named(state: State, name: str) -> NodeRec:
    node = state.node_named(name) or state.nodes.get(name)
    if node is None:
        raise not_found("node", name)
    return node


def register_node(state: State, body: dict[str, Any]) -> None:
    if state.node_named(body["name"]) is not None:
        raise SimError(400, "name exists", f"name: node '{body['name']}' already exists")
    now = state.clock()
    node = NodeRec(id=new_id(), name=body["name"], address=body["address"],
                   password=body["password"], tls=body["tls"], created_at=now, boot_at=now,
                   memory_bytes=state.node_memory)
    state.nodes[node.id] = node
    state.by_node[node.id] = {}
    state.changed()


def update_node(state: State, body: dict[str, Any]) -> None:
    node = state.node(body["id"])
    other = state.node_named(body["name"])
    if other is not None and other.id != node.id:
        raise SimError(400, "name exists", f"name: node '{body['name']}' already exists")
    node.name, node.address, node.tls = body["name"], body["address"], body["tls"]
    if body["password"]:
        node.password = body["password"]
    state.changed()


def delete_nodes(state: State, ids: list[str]) -> str | list[dict[str, Any]]:
    """``"success"``, or the conflicts (nodes used by services, not deleted) (§5.11)."""
    conflicts = []
    for node_id in ids:
        node = state.nodes.get(node_id)
        if node is None:
            continue
        serves = [{"id": s.id, "name": s.name} for s in state.services.values()
                  if node.name in s.node_names or any(
                      c.service_id == s.id for c in state.containers_on(node.id))]
        if serves:
            conflicts.append({"id": node.id, "name": node.name, "serves": serves})
            continue
        del state.nodes[node_id]
        state.by_node.pop(node_id, None)
    if len(conflicts) < len(ids):
        state.changed()
    return conflicts or "success"


def exists(state: State, field: str, value: str, exclude_id: str | None) -> bool:
    if field not in ("name", "address"):
        raise bad_request(f"{field}: unknown field")
    return any(getattr(n, field) == value and n.id != exclude_id for n in state.nodes.values())
