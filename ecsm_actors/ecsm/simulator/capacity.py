"""The simulator's capacity model: node memory, container reservations, refusals.

Runs inside the simulator process, always under ``State.lock``; pure functions over the
records. The platform as modelled (documented in the README, "Capacity"):

* each node has ``memory_bytes`` for containers (``simulator.node_memory``, per node
  through ``POST /_sim/nodes/{name}/memory``); the OS's own share is outside it;
* a container reserves the memory limit of its service — ``image.config.sylixos.
  resources.memory.memoryLimitMB`` of the service, else of the image's built-in config,
  else ``simulator.default_memory_limit`` — from its deployment until it is removed,
  whatever its run state (a stopped, paused or crashed container keeps its room, as an
  embedded platform that allocates a container's memory partition at deployment would);
* an instance is deployed on a node only while the reservations there stay within the
  node's memory. When no eligible node has room, the instance is still recorded but
  refused: ``status: exited``, ``deployStatus: failed``, ``failedMessage`` saying how much
  it needs and how much the best node has free; it holds no memory, counts in neither
  ``instanceOnline`` nor the node's figures, and shows in the service's
  ``errorInstance``;
* the platform never retries a refused instance by itself: a ``start``/``restart`` of the
  container, or an update of its service, places it again (on its node for a static
  service, on any node of the pool with room for a dynamic one) — what the service
  controller's repair of a container that is not running already does;
* a node's figures follow the reservations: ``node/status`` ``memoryTotal`` is the
  node's memory, ``memoryFree`` = total − reserved (never below 0, e.g. after the node
  was shrunk under its reservations: nothing running is evicted), metrics ``ram.size``
  = reserved bytes and ``ram.percent`` = reserved / total.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ecsm_actors.ecsm.simulator.model import (
    CREATED,
    EXITED,
    MIB,
    STOP,
    ContainerRec,
    NodeRec,
    ServiceRec,
)
from ecsm_actors.ecsm.simulator.state import State

FAILED = "failed"


def resources(state: State, svc: ServiceRec) -> dict[str, Any]:
    """The service config's sylixos resources, else the image's built-in ones."""
    config = svc.image.get("config")
    if not isinstance(config, dict):
        image = state.service_image(svc)
        config = image.config if image is not None else {}
    sylixos = config.get("sylixos") if isinstance(config, dict) else None
    res = (sylixos or {}).get("resources") if isinstance(sylixos, dict) else None
    return res if isinstance(res, dict) else {}


def limit_mb(res: dict[str, Any], section: str, key: str, default: int) -> int:
    """``res[section][key]`` MiB as bytes when a positive integer, else ``default``."""
    part = res.get(section)
    value = part.get(key) if isinstance(part, dict) else None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value * MIB
    return default


def memory_limit(state: State, svc: ServiceRec) -> int:
    """Bytes one container of ``svc`` reserves on its node."""
    return limit_mb(resources(state, svc), "memory", "memoryLimitMB",
                    state.default_memory_limit)


def reserved(state: State, node: NodeRec) -> int:
    """Bytes reserved on ``node`` by the containers deployed there."""
    limits: dict[str, int] = {}
    total = 0
    for c in state.containers_on(node.id):
        if c.refused:
            continue
        if c.service_id not in limits:
            limits[c.service_id] = memory_limit(state, state.services[c.service_id])
        total += limits[c.service_id]
    return total


def free(state: State, node: NodeRec) -> int:
    return max(0, node.memory_bytes - reserved(state, node))


def fits(state: State, node: NodeRec, need: int) -> bool:
    return reserved(state, node) + need <= node.memory_bytes


def refusal(state: State, need: int, nodes: Sequence[NodeRec]) -> str:
    """The ``failedMessage`` of an instance that fits on none of ``nodes``."""
    if not nodes:
        return f"insufficient memory: needs {need // MIB} MiB, no eligible node"
    best = max(nodes, key=lambda n: (free(state, n), n.name))
    return (f"insufficient memory: needs {need // MIB} MiB, node '{best.name}' has "
            f"{free(state, best) // MIB} MiB free of {best.memory_bytes // MIB} MiB"
            + (f" (best of {len(nodes)} eligible nodes)" if len(nodes) > 1 else ""))


def refuse(c: ContainerRec, message: str) -> None:
    c.refused, c.state, c.failed_message, c.stopped_by_node = True, EXITED, message, False


def deploy(state: State, c: ContainerRec, node: NodeRec, action: str) -> None:
    """Mark ``c`` deployed on ``node`` (room checked by the caller): it starts after the
    start delay (``run`` on a live node), else it stays ``stop``."""
    now = state.clock()
    if c.node_id != node.id:
        state.move_container(c, node.id)
    run = action == "run"
    c.refused, c.failed_message = False, None
    c.state = CREATED if run and node.online else STOP
    c.ready_at = now + state.start_delay
    c.stopped_by_node = run and not node.online


def retry(state: State, c: ContainerRec, candidates: Sequence[NodeRec], action: str) -> bool:
    """Place a refused container again: its own node first, then the other candidates
    (fewest reservations first). False (and a fresh message) when none has room."""
    svc = state.services[c.service_id]
    need = memory_limit(state, svc)
    own = state.nodes.get(c.node_id)
    order = sorted((n for n in candidates if n.id != c.node_id),
                   key=lambda n: (not n.online, reserved(state, n), n.name))
    for node in ([own] if own is not None else []) + order:
        if fits(state, node, need):
            deploy(state, c, node, action)
            return True
    c.failed_message = refusal(state, need, [n for n in [own, *order] if n is not None])
    return False


def node_figures(state: State, node: NodeRec) -> dict[str, int]:
    """``memoryTotal``, ``memoryAllocated`` and ``memoryFree`` of a node (admin views)."""
    used = reserved(state, node)
    return {"memoryTotal": node.memory_bytes, "memoryAllocated": used,
            "memoryFree": max(0, node.memory_bytes - used)}
