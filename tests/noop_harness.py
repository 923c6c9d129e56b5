"""A real registry plus the ``noop`` test controller, for runtime integration and fault
tests and the runtime benchmark: start them, write objects, read back what the
controller saw (its ``NoopReconciled`` condition and its per-reconcile record file)."""

from __future__ import annotations

import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

from ecsm_actors.config import Config, load_config
from ecsm_actors.controllers.noop import CONDITION, parse_message
from ecsm_actors.errors import RegistryError
from ecsm_actors.registry.client import RegistryClient
from tests.helpers import Processes, wait_until

KIND = "ECSMService"


def config(run_dir: Path) -> Config:
    return load_config(environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)})


def client(run_dir: Path, timeout: float = 5.0) -> RegistryClient:
    return RegistryClient(config(run_dir).registry_endpoint, timeout=timeout)


def start_registry(processes: Processes, env: dict[str, str] | None = None,
                   timeout: float = 15.0) -> subprocess.Popen[bytes]:
    proc = processes.spawn("registry", env=env)
    with client(processes.run_dir, timeout=0.5) as c:
        def ready() -> bool:
            try:
                return bool(c.ping())
            except RegistryError:
                return False
        wait_until(ready, timeout=timeout, what="registry answering PING")
    return proc


def record_path(run_dir: Path) -> Path:
    return run_dir / "noop-record.log"


def start_noop(processes: Processes, **env: str) -> subprocess.Popen[bytes]:
    """Start ``controller noop``; keyword arguments become environment variables."""
    full = {"ECSM_ACTORS_NOOP_RECORD": str(record_path(processes.run_dir)), **env}
    return processes.spawn("controller", "noop", env=full)


def records(run_dir: Path) -> dict[str, list[int]]:
    """key → every resourceVersion the controller reconciled, in order (0: gone)."""
    out: dict[str, list[int]] = defaultdict(list)
    path = record_path(run_dir)
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, rv = line.partition(" ")
            if rv:
                out[key].append(int(rv))
    return out


def observed(obj: dict[str, Any]) -> int | None:
    """The resourceVersion the noop controller last recorded in the object's status."""
    for c in (obj.get("status") or {}).get("conditions") or ():
        if c.get("type") == CONDITION:
            return parse_message(c["message"])["resourceVersion"]
    return None


def spec_key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}"


def converged(c: RegistryClient, run_dir: Path, final: dict[str, int | None]) -> bool:
    """Every live key's status records exactly its final spec version; every deleted key
    (final None) was last reconciled as gone."""
    listed = {spec_key(o): o for o in c.list(KIND).items}
    seen = records(run_dir)
    for key, rv in final.items():
        if rv is None:
            if key in listed or not seen.get(key) or seen[key][-1] != 0:
                return False
        elif key not in listed or observed(listed[key]) != rv:
            return False
    return True


def wait_converged(c: RegistryClient, run_dir: Path, final: dict[str, int | None],
                   timeout: float = 30.0) -> None:
    wait_until(lambda: converged(c, run_dir, final), timeout=timeout, interval=0.2,
               what=f"{len(final)} objects reconciled to their final version")
