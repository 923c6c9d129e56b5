"""Where the simulator puts a service's containers, and which ones it removes first.

Runs inside the simulator process under the state lock; pure functions over records.
Static: one container per listed node. Dynamic: ``factor`` containers spread over the
listed nodes that are up (all nodes when none are listed), fewest-of-this-service first.
Removal prefers containers that are not running, then the most crowded node, newest first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ecsm_actors.ecsm.simulator.model import RUNNING, ContainerRec, NodeRec


def spread(candidates: Sequence[NodeRec], existing: Sequence[ContainerRec], count: int,
           load: Counter[str] | None = None) -> list[NodeRec]:
    """Pick ``count`` nodes for new containers: the candidate holding the fewest containers
    of the service, ties broken by fewest containers overall, then by list order."""
    if not candidates or count <= 0:
        return []
    mine = Counter(c.node_id for c in existing)
    overall = load or Counter()
    order = {n.id: i for i, n in enumerate(candidates)}
    chosen: list[NodeRec] = []
    for _ in range(count):
        node = min(candidates, key=lambda n: (mine[n.id], overall[n.id], order[n.id]))
        mine[node.id] += 1
        overall[node.id] += 1
        chosen.append(node)
    return chosen


def victims(containers: Sequence[ContainerRec], count: int, now: float) -> list[ContainerRec]:
    """The ``count`` containers to remove when scaling down."""
    if count <= 0:
        return []
    per_node = Counter(c.node_id for c in containers)
    ranked = sorted(
        enumerate(containers),
        key=lambda ic: (ic[1].status(now) == RUNNING, -per_node[ic[1].node_id], -ic[0]),
    )
    return [c for _, c in ranked[:count]]
