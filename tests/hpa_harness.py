"""A whole autoscaling stack for HPA integration, fault tests and the HPA benchmark:
registry + ECSM simulator + service controller + HPA controller, as real processes in
one run directory; helpers to declare a service with its HPA, drive the simulated load
and read what the controllers did."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from ecsm_actors.config import Config, load_config
from ecsm_actors.ecsm.simulator.admin import SimulatorAdmin
from ecsm_actors.errors import RegistryError
from ecsm_actors.registry.client import RegistryClient
from tests.helpers import Processes, wait_until

#: Sync period of the HPA controller under test, seconds.
SYNC = 0.5


def config(run_dir: Path) -> Config:
    return load_config(environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)})


def start_registry(processes: Processes) -> subprocess.Popen[bytes]:
    proc = processes.spawn("registry")
    with RegistryClient(config(processes.run_dir).registry_endpoint, timeout=0.5) as c:
        def ready() -> bool:
            try:
                return bool(c.ping())
            except RegistryError:
                return False
        wait_until(ready, timeout=20, what="registry answering PING")
    return proc


def start_simulator(processes: Processes) -> SimulatorAdmin:
    processes.spawn("simulator", "--nodes", "3",
                    env={"ECSM_ACTORS_SIMULATOR_START_DELAY": "0.2"})
    address = config(processes.run_dir).ecsm_address_file
    doc = wait_until(lambda: json.loads(address.read_text()), timeout=20,
                     what="simulator address file")
    admin = SimulatorAdmin(doc["url"])
    wait_until(admin.health, timeout=10, what="simulator answering")
    return admin


def hpa_env(**extra: str) -> dict[str, str]:
    # Containers here start a fraction of a second before the load is set: their CPU
    # counts at once (the start-up rules have their own unit tests).
    return {"ECSM_ACTORS_HPA_SYNC_PERIOD": str(SYNC),
            "ECSM_ACTORS_HPA_INITIAL_READINESS_DELAY": "0",
            "ECSM_ACTORS_CONTROLLER_HEARTBEAT_INTERVAL": "0.5", **extra}


def start_service_controller(processes: Processes) -> subprocess.Popen[bytes]:
    return processes.spawn("controller", "service",
                           env={"ECSM_ACTORS_SERVICE_POLL_INTERVAL": "0.2"})


def start_hpa_controller(processes: Processes, **extra: str) -> subprocess.Popen[bytes]:
    return processes.spawn("controller", "hpa", env=hpa_env(**extra))


def start_stack(processes: Processes) -> tuple[RegistryClient, SimulatorAdmin]:
    """Simulator first (the controllers read its address), then registry, controllers."""
    admin = start_simulator(processes)
    start_registry(processes)
    start_service_controller(processes)
    start_hpa_controller(processes)
    return RegistryClient(config(processes.run_dir).registry_endpoint, timeout=5.0), admin


def service(name: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "ecsm.sh/v1", "kind": "ECSMService", "metadata": {"name": name},
        "spec": {"deploymentStrategy": {"type": "Dynamic", "replicas": replicas,
                                        "nodePool": ["node-1", "node-2", "node-3"]},
                 "template": {"image": "app@1.0#sylixos",
                              "resources": {"limits": {"memory": "64Mi"}}}},
    }


def hpa(name: str, *, target: int = 50, min_replicas: int = 1, max_replicas: int = 4,
        down_window: int = 3, paused: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "ecsm.sh/v1", "kind": "ECSMHpa", "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"kind": "ECSMService", "name": name},
            "minReplicas": min_replicas, "maxReplicas": max_replicas, "paused": paused,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": target}}}],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": down_window}},
        },
    }


def replicas(c: RegistryClient, name: str) -> int:
    svc = c.get("ECSMService", "default", name)
    return int(svc["spec"]["deploymentStrategy"]["replicas"])


def hpa_status(c: RegistryClient, name: str) -> dict[str, Any]:
    return c.get("ECSMHpa", "default", name).get("status") or {}


def condition(c: RegistryClient, name: str, type_: str) -> tuple[str, str] | None:
    for cond in hpa_status(c, name).get("conditions") or ():
        if cond.get("type") == type_:
            return cond.get("status"), cond.get("reason")
    return None


def ecsm_service_id(c: RegistryClient, name: str, timeout: float = 20.0) -> str:
    def first_id() -> str | None:
        ids = (c.get("ECSMService", "default", name).get("status") or {}).get(
            "underlyingServiceIDs") or []
        return ids[0] if ids else None
    service_id = wait_until(first_id, timeout=timeout, what=f"ECSM service of {name}")
    assert service_id is not None  # wait_until returns only a truthy value
    return service_id


def running_usage(admin: SimulatorAdmin, service_id: str) -> list[float]:
    """cpuUsage.total of the running containers of one ECSM service."""
    return [float(ct["cpuUsage"]["total"]) for ct in admin.state()["containers"]
            if ct.get("serviceId") == service_id and ct.get("status") == "running"]


def running_count(admin: SimulatorAdmin, service_id: str) -> int:
    return len(running_usage(admin, service_id))


def declare(c: RegistryClient, admin: SimulatorAdmin, name: str, **hpa_args: Any) -> str:
    """Create the service and its HPA; return its ECSM service id once it runs."""
    c.create(service(name))
    sid = ecsm_service_id(c, name)
    wait_until(lambda: running_count(admin, sid) >= 1, timeout=20,
               what=f"{name} running on the simulator")
    c.create(hpa(name, **hpa_args))
    return sid


def hold(predicate: Any, seconds: float, interval: float = 0.05) -> None:
    """Assert ``predicate`` stays true for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert predicate(), "the condition stopped holding"
        time.sleep(interval)

