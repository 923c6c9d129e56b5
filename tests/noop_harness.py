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


def wait_reconciling(run_dir: Path, timeout: float = 20.0) -> None:
    """Block until the controller has synced and reconciles: a sentinel object created
    now must show up in its record."""
    with client(run_dir) as c:
        c.create(service_probe())
    wait_until(lambda: records(run_dir).get("default/probe"), timeout=timeout,
               what="the noop controller reconciling")


def service_probe() -> dict[str, Any]:
    from tests.registry_samples import service

    return service("probe", replicas=1)


def records(run_dir: Path) -> dict[str, list[int]]:
    """key → every resourceVersion the controller reconciled, in order (0: gone)."""
    out: dict[str, list[int]] = defaultdict(list)
    path = record_path(run_dir)
    if path.exists():
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2:
                out[fields[0]].append(int(fields[1]))
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


def mismatches(c: RegistryClient, run_dir: Path, final: dict[str, int | None]) -> list[str]:
    """Keys not yet reconciled to their final version: a live key's status must record
    exactly its final spec version; a deleted key (final None) must have been last
    reconciled as gone."""
    listed = {spec_key(o): o for o in c.list(KIND).items}
    seen = records(run_dir)
    out = []
    for key, rv in final.items():
        if rv is None:
            if key in listed or not seen.get(key) or seen[key][-1] != 0:
                out.append(f"{key}: deleted, reconciled {seen.get(key, [])[-3:]}")
        elif key not in listed or observed(listed[key]) != rv:
            status = observed(listed[key]) if key in listed else "absent"
            out.append(f"{key}: final {rv}, status says {status}, "
                       f"reconciled {seen.get(key, [])[-3:]}")
    return out


def wait_converged(c: RegistryClient, run_dir: Path, final: dict[str, int | None],
                   timeout: float = 30.0) -> None:
    last: list[str] = []

    def done() -> bool:
        last[:] = mismatches(c, run_dir, final)
        return not last

    try:
        wait_until(done, timeout=timeout, interval=0.2,
                   what=f"{len(final)} objects reconciled to their final version")
    except AssertionError as e:
        raise AssertionError(f"{e}; {len(last)} behind, e.g. {last[:5]}") from None


def starts(run_dir: Path) -> dict[tuple[str, int], float]:
    """(key, resourceVersion seen) → monotonic time the first such reconcile started."""
    out: dict[tuple[str, int], float] = {}
    path = record_path(run_dir)
    for line in path.read_text().splitlines() if path.exists() else ():
        fields = line.split()
        if len(fields) == 3:
            out.setdefault((fields[0], int(fields[1])), float(fields[2]))
    return out
