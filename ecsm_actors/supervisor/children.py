"""The child table: the built-in one (the product) or one read from a file (tests, custom).

Runs in the supervisor process. Built-in children, in start order::

    zygote               (supervisor.zygote)     ready: says so on its socket pair
    simulator            (only with --simulate)  ready: address file written + TCP connect
                         (its argv carries --node-memory simulator.node_memory)
    registry                                     ready: answers PING (with its own pid)
    service-controller   depends on registry     ready: liveness report with stats.synced
    hpa-controller       depends on registry     ready: liveness report with stats.synced

Every child is ``python -m ecsm_actors <process>``: forked from the zygote (which has
imported their code) while it is ready, else a fresh interpreter. The zygote is not
watched for liveness reports (it sends none: no ZeroMQ in it). Restart, backoff and
watchdog settings come from the ``[supervisor]`` section. A file table is a TOML
(``[[child]]`` entries) or JSON (a list) of :class:`~.spec.ChildSpec` fields.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from ecsm_actors.config import Config
from ecsm_actors.errors import ConfigError
from ecsm_actors.supervisor.spec import (
    ChildSpec,
    Readiness,
    ReadinessKind,
    settings_defaults,
    spec_from_mapping,
)

SIMULATOR = "simulator"
REGISTRY = "registry"
SERVICE_CONTROLLER = "service-controller"
HPA_CONTROLLER = "hpa-controller"
ZYGOTE = "zygote"

#: What the zygote imports for each built-in process of ``python -m ecsm_actors``: its
#: main module and what it imports later, lazily (listed from ``-X importtime`` of running
#: children: every module a child imports itself costs its restart time and private memory).
PRELOAD = {
    "registry": ("ecsm_actors.registry.server", "ecsm_actors.api.compiled",
                 "ecsm_actors.api.schema", "ecsm_actors.api.service_schema",
                 "ecsm_actors.api.hpa_schema", "ecsm_actors.api.wire", "ecsm_actors.api.limits",
                 "decimal", "difflib", "lmdb._envid"),
    "controller": ("ecsm_actors.controllers.main", "ecsm_actors.controllers.service",
                   "ecsm_actors.controllers.service.controller", "ecsm_actors.controllers.hpa",
                   "ecsm_actors.registry.client", "ecsm_actors.registry.subscriber",
                   "ecsm_actors.api.service", "ecsm_actors.api.validation",
                   "ecsm_actors.api.toplevel", "ecsm_actors.ecsm.clientset",
                   "ecsm_actors.ecsm.types.nodes",
                   "ecsm_actors.ecsm.plainhttp", "zmq.utils.monitor", "zmq.asyncio",
                   "subprocess", "secrets", "hmac"),
    "simulator": ("ecsm_actors.ecsm.simulator.server", "encodings.idna"),
    # Only with store.backend = "etcd": the etcd client (and requests under it) for the
    # registry's store and event source and for the controllers' leader election; without
    # it each restart on etcd imported them itself (170-300 ms). Left out on LMDB, where
    # no child uses them, to keep the zygote's memory.
    "etcd": ("ecsm_actors.etcd.client", "ecsm_actors.etcd.watch",
             "ecsm_actors.store.etcd_store", "ecsm_actors.store.etcd_events",
             "ecsm_actors.store.etcd_event_records", "ecsm_actors.runtime.leader.elector",
             "ecsm_actors.runtime.leader.record"),
}


def builtin_children(cfg: Config, *, simulate: bool) -> list[ChildSpec]:
    """The product's children, in start order."""
    python = (sys.executable, "-m", "ecsm_actors")
    defaults = settings_defaults(cfg.supervisor)
    specs: list[ChildSpec] = []
    before: tuple[str, ...] = ()
    if cfg.supervisor.zygote:
        processes = ("registry", "controller", *(("simulator",) if simulate else ()),
                     *(("etcd",) if cfg.store.backend == "etcd" else ()))
        specs.append(ChildSpec(
            name=ZYGOTE,
            argv=(*python, "zygote", *(m for p in processes for m in PRELOAD[p])),
            readiness=Readiness(kind=ReadinessKind.ZYGOTE),
            **{**defaults, "heartbeat_deadline": 0.0, "reconcile_deadline": 0.0}))
        before = (ZYGOTE,)
    if simulate:
        specs.append(ChildSpec(
            name=SIMULATOR,
            argv=(*python, "simulator", "--node-memory", str(int(cfg.simulator.node_memory))),
            readiness=Readiness(kind=ReadinessKind.ADDRESS_FILE,
                                path=str(cfg.ecsm_address_file)),
            depends_on=before, **defaults))
        before = (*before, SIMULATOR)
    specs.append(ChildSpec(
        name=REGISTRY, argv=(*python, "registry"), depends_on=before,
        # Pinged through the stream endpoint when it is served: every local process
        # talks to the registry there (a broken stream listener is a registry not ready).
        readiness=Readiness(kind=ReadinessKind.REGISTRY_PING,
                            endpoint=cfg.registry_stream_endpoint or cfg.registry_endpoint),
        **defaults))
    synced = Readiness(kind=ReadinessKind.LIVENESS, stat="synced")
    for name, which in ((SERVICE_CONTROLLER, "service"), (HPA_CONTROLLER, "hpa")):
        specs.append(ChildSpec(
            name=name, argv=(*python, "controller", which), depends_on=(*before, REGISTRY),
            readiness=synced, **defaults))
    return specs


def load_children(path: str | Path, cfg: Config) -> list[ChildSpec]:
    """Read a child table file; raises ConfigError naming the file and the problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read child table {path}: {e.strerror}") from e
    try:
        if path.suffix == ".json":
            entries: Any = json.loads(raw)
        else:
            entries = tomllib.loads(raw.decode()).get("child", [])
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"child table {path}: {e}") from e
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"child table {path}: expected a list of children")
    specs = [spec_from_mapping(entry, cfg.supervisor) for entry in entries]
    check_table(specs)
    return specs


def check_table(specs: list[ChildSpec]) -> None:
    """Names unique; dependencies name earlier children (so the order is a valid start order)."""
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"child table: duplicate child {spec.name!r}")
        for dep in spec.depends_on:
            if dep not in seen:
                raise ConfigError(f"child {spec.name}: depends on {dep!r}, which is not "
                                  "an earlier child")
        seen.add(spec.name)
