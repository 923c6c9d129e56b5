"""The ``noop`` test controller: proves the runtime delivers every object's final version.

Runs as ``python -m ecsm_actors controller noop`` (integration, fault tests and the
benchmark). For each key it reads the object fresh, records what it saw, and writes a
status condition ``NoopReconciled`` whose message is
``resourceVersion=<rv seen> reconciles=<count in this process>`` through
``ctx.update_status`` (so the runtime must ignore that write's echo, or it would loop).

Environment knobs (tests only):

* ``ECSM_ACTORS_NOOP_DELAY`` — seconds each reconcile sleeps first (a slow reconciler);
* ``ECSM_ACTORS_NOOP_RECORD`` — a file that gets one line ``<key> <rv> <start>`` per
  reconcile (rv 0: the object was gone; start: ``time.monotonic()`` when the reconcile
  began, comparable across processes on Linux), appended atomically (one ``write``);
* ``ECSM_ACTORS_NOOP_KIND`` — the kind watched (default ECSMService);
* ``ECSM_ACTORS_NOOP_STATUS`` — ``0`` to skip the status write (pure no-op reconciles).
"""

from __future__ import annotations

import os
import threading
import time

from ecsm_actors import protocol
from ecsm_actors.config import Config
from ecsm_actors.errors import NotFound
from ecsm_actors.informer import resource_version_of
from ecsm_actors.runtime import ControllerSpec, ReconcileContext, Result
from ecsm_actors.runtime.conditions import set_condition

CONDITION = "NoopReconciled"


def parse_message(message: str) -> dict[str, int]:
    """``resourceVersion=12 reconciles=3`` → ``{"resourceVersion": 12, "reconciles": 3}``."""
    out = {}
    for part in message.split():
        name, _, value = part.partition("=")
        out[name] = int(value)
    return out


class NoopReconciler:
    def __init__(self, *, delay: float = 0.0, record: str = "", write_status: bool = True) -> None:
        self.delay = delay
        self.write_status = write_status
        self._record_fd = os.open(record, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) \
            if record else None
        self._lock = threading.Lock()
        self._reconciles: dict[str, int] = {}
        self._written: dict[str, int] = {}  # key → rv our last status write produced

    def _record(self, key: str, rv: int, start: float) -> None:
        if self._record_fd is not None:
            os.write(self._record_fd, f"{key} {rv} {start:.6f}\n".encode())

    def reconcile(self, ctx: ReconcileContext, key: str) -> Result:
        start = time.monotonic()
        if self.delay:
            time.sleep(self.delay)
        namespace, name = protocol.split_key(key)
        try:
            obj = ctx.registry.get(ctx.kind, namespace, name)
        except NotFound:
            self._record(key, 0, start)
            with self._lock:
                self._written.pop(key, None)
            return Result()
        rv = resource_version_of(obj)
        self._record(key, rv, start)
        with self._lock:
            count = self._reconciles.get(key, 0) + 1
            self._reconciles[key] = count
            unchanged = self._written.get(key) == rv
        if not self.write_status or unchanged:
            return Result()
        status = dict(obj.get("status") or {})
        status["conditions"], _ = set_condition(
            list(status.get("conditions") or []), type_=CONDITION, status="True",
            reason="Observed", message=f"resourceVersion={rv} reconciles={count}")
        obj["status"] = status
        written = ctx.update_status(obj)  # a Conflict is retried by the workqueue
        with self._lock:
            self._written[key] = resource_version_of(written)
        return Result()


def build(cfg: Config) -> ControllerSpec:
    env = os.environ
    reconciler = NoopReconciler(delay=float(env.get("ECSM_ACTORS_NOOP_DELAY") or 0),
                                record=env.get("ECSM_ACTORS_NOOP_RECORD", ""),
                                write_status=env.get("ECSM_ACTORS_NOOP_STATUS", "1") != "0")
    return ControllerSpec(name="noop-controller",
                          kind=env.get("ECSM_ACTORS_NOOP_KIND") or "ECSMService",
                          reconciler=reconciler, workers=cfg.controller.workers)
