"""The simulator's whole state: stores, indexes, lookups, snapshot and restore.

Runs inside the simulator process. Every read and write of the state happens under
``State.lock`` (handlers take it once per request). Containers are indexed by service and
by node so a derived view costs O(containers of the object). ``changed()`` is called after
every mutation; it bumps ``version`` and notifies the persister (if any).

Invariants: every container's service and node exist; the indexes hold exactly the
containers of ``containers``; container names, ids and task ids are unique.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ecsm_actors.ecsm.simulator.errors import SimError, not_found
from ecsm_actors.ecsm.simulator.model import (
    GIB,
    MIB,
    ContainerRec,
    ImageRec,
    NodeRec,
    ServiceRec,
    fmt_time,
    from_dict,
    to_dict,
)
from ecsm_actors.ecsm.simulator.seed import seed_images, seed_nodes

SNAPSHOT_VERSION = 1
TRANSACTIONS_KEPT = 1000


def new_id() -> str:
    return uuid.uuid4().hex


class State:
    def __init__(self, *, nodes: list[NodeRec], images: list[ImageRec],
                 start_delay: float = 0.5, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, node_memory: int = 4 * GIB,
                 default_memory_limit: int = 512 * MIB) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.rng = rng or random.Random()
        self.start_delay = start_delay
        #: Memory of a node registered later (seeded nodes get it at seeding).
        self.node_memory = node_memory
        #: Reservation of a container whose service and image set no memoryLimitMB.
        self.default_memory_limit = default_memory_limit
        self.nodes: dict[str, NodeRec] = {n.id: n for n in nodes}
        self.images: dict[str, ImageRec] = {i.id: i for i in images}
        self.services: dict[str, ServiceRec] = {}
        self.containers: dict[str, ContainerRec] = {}
        self.by_service: dict[str, dict[str, None]] = {}
        self.by_node: dict[str, dict[str, None]] = {n.id: {} for n in nodes}
        self.by_name: dict[str, str] = {}
        self._node_names: dict[str, str] = {}  # a cache, revalidated on every lookup
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.transactions: deque[dict[str, Any]] = deque(maxlen=TRANSACTIONS_KEPT)
        self.seq = 0
        self.version = 0
        self.on_change: Callable[[], None] | None = None

    @classmethod
    def seeded(cls, node_count: int, *, start_delay: float = 0.5,
               clock: Callable[[], float] = time.time, node_memory: int = 4 * GIB,
               default_memory_limit: int = 512 * MIB) -> State:
        now = clock()
        return cls(nodes=seed_nodes(node_count, now, node_memory), images=seed_images(now),
                   start_delay=start_delay, clock=clock, node_memory=node_memory,
                   default_memory_limit=default_memory_limit)

    def changed(self) -> None:
        self.version += 1
        if self.on_change is not None:
            self.on_change()

    # -- lookups ---------------------------------------------------------------------

    def node(self, node_id: str) -> NodeRec:
        node = self.nodes.get(node_id)
        if node is None:
            raise not_found("node", node_id)
        return node

    def node_named(self, name: str) -> NodeRec | None:
        node_id = self._node_names.get(name)
        if node_id is None or node_id not in self.nodes or self.nodes[node_id].name != name:
            self._node_names = {n.name: n.id for n in self.nodes.values()}
            node_id = self._node_names.get(name)
        return self.nodes[node_id] if node_id is not None else None

    def service(self, service_id: str) -> ServiceRec:
        svc = self.services.get(service_id)
        if svc is None:
            raise not_found("service", service_id)
        return svc

    def service_named(self, name: str) -> ServiceRec | None:
        for svc in self.services.values():
            if svc.name == name:
                return svc
        return None

    def container_named(self, name: str) -> ContainerRec:
        cid = self.by_name.get(name)
        if cid is None:
            raise not_found("container", name)
        return self.containers[cid]

    def container_by_task(self, task_id: str) -> ContainerRec:
        for c in self.containers.values():
            if c.task_id == task_id:
                return c
        raise not_found("container task", task_id)

    def containers_of(self, service_id: str) -> list[ContainerRec]:
        return [self.containers[c] for c in self.by_service.get(service_id, ())]

    def containers_on(self, node_id: str) -> list[ContainerRec]:
        return [self.containers[c] for c in self.by_node.get(node_id, ())]

    def image_for_ref(self, ref: str, registry_id: str = "local") -> ImageRec | None:
        """``name@tag[#os]`` in the registry (the os is optional)."""
        body, _, os_ = ref.partition("#")
        name, _, tag = body.partition("@")
        for image in self.images.values():
            if (image.registry_id == registry_id and image.name == name and image.tag == tag
                    and (not os_ or image.os == os_)):
                return image
        return None

    def service_image(self, svc: ServiceRec) -> ImageRec | None:
        return self.image_for_ref(str(svc.image.get("ref") or ""))

    # -- container bookkeeping -------------------------------------------------------

    def add_container(self, c: ContainerRec) -> None:
        if c.name in self.by_name:
            raise SimError(500, f"container name '{c.name}' already in use")
        self.containers[c.id] = c
        self.by_service.setdefault(c.service_id, {})[c.id] = None
        self.by_node.setdefault(c.node_id, {})[c.id] = None
        self.by_name[c.name] = c.id

    def move_container(self, c: ContainerRec, node_id: str) -> None:
        """Re-home a container that was never deployed (a refused one) on another node."""
        self.by_node.get(c.node_id, {}).pop(c.id, None)
        c.node_id = node_id
        self.by_node.setdefault(node_id, {})[c.id] = None

    def remove_container(self, c: ContainerRec) -> None:
        self.containers.pop(c.id, None)
        self.by_service.get(c.service_id, {}).pop(c.id, None)
        self.by_node.get(c.node_id, {}).pop(c.id, None)
        self.by_name.pop(c.name, None)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def add_history(self, c: ContainerRec, cmd: str, user: str = "admin") -> None:
        self.history.setdefault(c.task_id, []).append(
            {"id": c.task_id, "cmd": cmd, "user": user, "time": fmt_time(self.clock())})

    def add_transaction(self, status: str, data: Any) -> dict[str, Any]:
        tx = {"id": new_id(), "status": status, "data": data,
              "timestamp": int(self.clock() * 1000)}
        self.transactions.append(tx)
        return tx

    def iter_nodes(self) -> Iterator[NodeRec]:
        return iter(list(self.nodes.values()))

    # -- persistence -----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything stored (not derived), as plain JSON-able data."""
        return {
            "version": SNAPSHOT_VERSION,
            "seq": self.seq,
            "nodes": [to_dict(n) for n in self.nodes.values()],
            "images": [to_dict(i) for i in self.images.values()],
            "services": [to_dict(s) for s in self.services.values()],
            "containers": [to_dict(c) for c in self.containers.values()],
            "history": self.history,
            "transactions": list(self.transactions),
        }

    @classmethod
    def restore(cls, doc: dict[str, Any], *, start_delay: float = 0.5,
                clock: Callable[[], float] = time.time, node_memory: int = 4 * GIB,
                default_memory_limit: int = 512 * MIB) -> State:
        """Rebuild a state from :meth:`snapshot`; raises ValueError on a malformed one.
        Stored nodes keep their stored memory; ``node_memory`` is for nodes registered
        later."""
        if not isinstance(doc, dict) or doc.get("version") != SNAPSHOT_VERSION:
            raise ValueError("not a simulator state snapshot (unknown version)")
        try:
            state = cls(nodes=[from_dict(NodeRec, d) for d in doc["nodes"]],
                        images=[from_dict(ImageRec, d) for d in doc["images"]],
                        start_delay=start_delay, clock=clock, node_memory=node_memory,
                        default_memory_limit=default_memory_limit)
            for d in doc["services"]:
                svc = from_dict(ServiceRec, d)
                state.services[svc.id] = svc
                state.by_service[svc.id] = {}
            for d in doc["containers"]:
                state.add_container(from_dict(ContainerRec, d))
            state.history = {str(k): list(v) for k, v in doc.get("history", {}).items()}
            state.transactions.extend(doc.get("transactions", []))
            state.seq = int(doc.get("seq", 0))
        except (KeyError, TypeError, SimError) as e:
            raise ValueError(f"malformed simulator state snapshot: {e}") from e
        return state
