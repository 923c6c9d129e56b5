"""A service-controller stack for integration, fault tests and the benchmark: ECSM
simulator + registry + ``controller service`` as real processes in one run directory,
plus readers of what the controller did (registry status, simulator admin state)."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecsm_actors.config import Config, load_config
from ecsm_actors.ecsm.simulator.admin import SimulatorAdmin
from ecsm_actors.errors import NotFound, RegistryError
from ecsm_actors.registry.client import RegistryClient
from tests.helpers import Processes, wait_until

KIND = "ECSMService"

#: Controller settings that make the tests quick: re-check drift twice a second.
FAST = {"ECSM_ACTORS_SERVICE_DRIFT_INTERVAL": "0.5",
        "ECSM_ACTORS_SERVICE_POLL_INTERVAL": "0.1",
        "ECSM_ACTORS_SERVICE_NODE_REFRESH_INTERVAL": "0.2",
        "ECSM_ACTORS_CONTROLLER_BACKOFF_CAP": "0.5",
        "ECSM_ACTORS_CONTROLLER_HEARTBEAT_INTERVAL": "0.5"}


def config(run_dir: Path) -> Config:
    return load_config(environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)})


@dataclass
class Stack:
    processes: Processes
    registry: RegistryClient
    admin: SimulatorAdmin
    controller: subprocess.Popen[bytes] | None = None

    def start_controller(self, **env: str) -> subprocess.Popen[bytes]:
        self.controller = self.processes.spawn("controller", "service", env={**FAST, **env})
        return self.controller

    def close(self) -> None:
        self.registry.close()
        self.admin.close()


def start_stack(processes: Processes, *, nodes: int = 3, start_delay: float = 0.2,
                controller: bool = True, node_memory: str | None = None,
                **controller_env: str) -> Stack:
    """Simulator first (the controller reads its address), then registry, controller.
    ``node_memory``: each node's memory for containers (the simulator's default when None)."""
    sim_env = {"ECSM_ACTORS_SIMULATOR_START_DELAY": str(start_delay)}
    if node_memory is not None:
        sim_env["ECSM_ACTORS_SIMULATOR_NODE_MEMORY"] = node_memory
    processes.spawn("simulator", "--nodes", str(nodes), env=sim_env)
    address = config(processes.run_dir).ecsm_address_file
    doc = wait_until(lambda: json.loads(address.read_text()), timeout=20,
                     what="simulator address file")
    admin = SimulatorAdmin(doc["url"])
    wait_until(admin.health, timeout=10, what="simulator answering")
    processes.spawn("registry")
    registry = RegistryClient(config(processes.run_dir).registry_endpoint, timeout=5.0)

    def ready() -> bool:
        try:
            return bool(registry.ping())
        except RegistryError:
            return False

    wait_until(ready, timeout=20, what="registry answering PING")
    stack = Stack(processes=processes, registry=registry, admin=admin)
    if controller:
        stack.start_controller(**controller_env)
    return stack


def service(name: str, *, image: str = "app@1.0", replicas: int = 2,
            nodes: list[str] | None = None, pool: list[str] | None = None,
            depends_on: list[str] | None = None, rollout: dict[str, Any] | None = None,
            namespace: str = "default") -> dict[str, Any]:
    if nodes is not None:
        strategy: dict[str, Any] = {"type": "Static", "nodes": nodes}
    else:
        strategy = {"type": "Dynamic", "replicas": replicas,
                    "nodePool": pool or ["node-1", "node-2", "node-3"]}
    spec: dict[str, Any] = {"deploymentStrategy": strategy, "template": {"image": image}}
    if depends_on:
        spec["dependsOn"] = depends_on
    if rollout:
        spec["rollout"] = rollout
    return {"apiVersion": "ecsm.sh/v1", "kind": KIND,
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def get(c: RegistryClient, name: str, namespace: str = "default") -> dict[str, Any]:
    return c.get(KIND, namespace, name)


def condition(c: RegistryClient, name: str, type_: str) -> tuple[str, str] | None:
    for cond in (get(c, name).get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond.get("status"), cond.get("reason")
    return None


def settled(c: RegistryClient, name: str, namespace: str = "default") -> bool:
    """Observed the latest generation, Available, and the rollout complete."""
    obj = get(c, name, namespace)
    status = obj.get("status") or {}
    conds = {x["type"]: (x["status"], x["reason"]) for x in status.get("conditions") or ()}
    return (status.get("observedGeneration") == obj["metadata"]["generation"]
            and conds.get("Available", ("",))[0] == "True"
            and conds.get("Progressing") == ("True", "NewRevisionAvailable")
            and conds.get("Degraded", ("False",))[0] != "True")


def ecsm(admin: SimulatorAdmin, prefix: str = "") -> dict[str, dict[str, Any]]:
    """ECSM service name → {id, factor, nodes (of containers), statuses} for names with
    the prefix."""
    state = admin.state()
    containers = {c["id"]: c for c in state["containers"]}
    out: dict[str, dict[str, Any]] = {}
    for svc in state["services"]:
        if not svc["name"].startswith(prefix):
            continue
        cs = [containers[i] for i in svc["containers"] if i in containers]
        out[svc["name"]] = {"id": svc["id"], "factor": svc["factor"],
                            "names": sorted((svc.get("node") or {}).get("names") or []),
                            "nodes": sorted(c["nodeName"] for c in cs),
                            "statuses": [c["status"] for c in cs],
                            "containers": [c["name"] for c in cs]}
    return out


def totals(admin: SimulatorAdmin, prefix: str) -> tuple[int, int]:
    """(containers, running) over the ECSM services whose name has the prefix."""
    total = running = 0
    for svc in ecsm(admin, prefix).values():
        total += len(svc["statuses"])
        running += svc["statuses"].count("running")
    return total, running


def owners(admin: SimulatorAdmin) -> dict[str, list[str]]:
    """``namespace/name`` → the ECSM service names it owns (by the naming rule)."""
    out: dict[str, list[str]] = defaultdict(list)
    for name in ecsm(admin):
        namespace, owner, _ = name.split(".")
        out[f"{namespace}/{owner}"].append(name)
    return out


def gone(c: RegistryClient, name: str) -> bool:
    try:
        get(c, name)
    except NotFound:
        return True
    return False
