"""Desired-state changes of the timeline: scale, roll out, delete, re-create, load, bounds.

Runs in the drill's main thread; turns a change :class:`~.schedule.Action` into writes
for the :class:`~.writer.DesiredStateWriter` (which retries them and records each
acknowledged one in the ledger), or into a load figure for the monitor to apply. Every
mutation *sets* values (never toggles or increments), so a retried write is idempotent.
"""

from __future__ import annotations

from typing import Any

from ecsm_actors.drill.context import DrillContext
from ecsm_actors.drill.schedule import Action, ActionKind
from ecsm_actors.drill.workload import NAMESPACE, template
from ecsm_actors.drill.writer import Write


def apply_change(ctx: DrillContext, action: Action) -> None:
    plan = ctx.workload.by_name[action.target]
    key = f"{NAMESPACE}/{plan.name}"
    p = action.p
    hpa_owned = plan.hpa is not None

    def modify(kind: str, mutate: Any) -> None:
        ctx.writer.submit(Write(op="modify", kind=kind, key=key, mutate=mutate,
                                hpa_owned=hpa_owned and kind == "ECSMService",
                                label=str(action.kind)))

    if action.kind is ActionKind.SCALE:
        if "nodes" in p:
            nodes = list(p["nodes"])

            def set_nodes(obj: dict[str, Any]) -> None:
                obj["spec"]["deploymentStrategy"]["nodes"] = nodes

            modify("ECSMService", set_nodes)
        else:
            replicas = int(p["replicas"])

            def set_replicas(obj: dict[str, Any]) -> None:
                obj["spec"]["deploymentStrategy"]["replicas"] = replicas

            modify("ECSMService", set_replicas)
    elif action.kind is ActionKind.ROLLOUT:
        new_template = template(str(p["image"]), int(p["revision"]), plan.memory_mb)

        def set_template(obj: dict[str, Any]) -> None:
            obj["spec"]["template"] = dict(new_template)

        modify("ECSMService", set_template)
    elif action.kind is ActionKind.DELETE:
        ctx.writer.submit(Write(op="delete", kind="ECSMService", key=key, label="delete"))
    elif action.kind is ActionKind.RECREATE:
        ctx.writer.submit(Write(op="create", kind="ECSMService", key=key,
                                manifest=plan.manifest(), hpa_owned=hpa_owned,
                                label="recreate"))
    elif action.kind is ActionKind.LOAD:
        ctx.loads.set(key, float(p["cpu"]))
    elif action.kind is ActionKind.HPA_BOUNDS:
        low, high = int(p["min_replicas"]), int(p["max_replicas"])

        def set_bounds(obj: dict[str, Any]) -> None:
            obj["spec"]["minReplicas"] = low
            obj["spec"]["maxReplicas"] = high

        modify("ECSMHpa", set_bounds)
    else:
        raise ValueError(f"not a desired-state change: {action.kind}")
