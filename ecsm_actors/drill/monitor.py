"""The drill's monitor thread: watches the system, times recoveries, keeps loads applied.

Runs in the drill process, in its own thread with its own registry and ECSM clients.
Every tick (``interval``) it lists the ECSMServices (for the lag figure and the canary
probes), asks the supervisor for ``ps`` (which also records every pid the system ever
had), reads ECSM's services from the simulator's admin API when an open probe needs
them, and feeds the resulting
:class:`~.recovery.Observation` to the recovery tracker. Every ``load_interval`` it sets
the CPU load the timeline asked for on the *current* ECSM revision of each HPA target
(a rollout moves the load to the new revision, as real traffic would).

Invariant: nothing the system does (a dead registry, a partitioned ECSM, a stopped
supervisor) stops the monitor; a failed read is a tick without that part.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ecsm_actors.drill.invariants import lag
from ecsm_actors.drill.recovery import Observation, RecoveryTracker
from ecsm_actors.drill.snapshot import EcsmServiceView, Snapshot, ecsm_name, revision_of
from ecsm_actors.errors import EcsmActorsError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class MonitorStatus:
    lag: int | None = None
    services: int = 0
    ticks: int = 0
    last_error: str = ""


class Monitor:
    def __init__(self, *, registry: Any, admin: Any, ps: Callable[[], list[dict]],
                 tracker: RecoveryTracker, loads: Any, interval: float = 0.25,
                 load_interval: float = 2.0) -> None:
        self.registry, self.admin, self._ps = registry, admin, ps
        self.tracker, self.loads = tracker, loads
        self.interval, self.load_interval = interval, load_interval
        self._status = MonitorStatus()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="drill-monitor", daemon=True)
        self._last_ecsm = 0.0
        self._last_load = 0.0

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    @property
    def status(self) -> MonitorStatus:
        return self._status

    def _run(self) -> None:
        ticks = 0
        while not self._stop.wait(self.interval):
            ticks += 1
            try:
                self.tick(ticks)
            except Exception as e:  # noqa: BLE001 - the monitor's one catch-all: keep watching
                logger.warning("monitor tick failed: %r", e)
                self._status = MonitorStatus(lag=self._status.lag, services=self._status.services,
                                             ticks=ticks, last_error=repr(e))

    def tick(self, ticks: int) -> None:
        at = time.monotonic()
        errors: list[str] = []
        services: dict[str, dict[str, Any]] | None = None
        try:
            items = self.registry.list("ECSMService").items
            services = {f"{o['metadata'].get('namespace', 'default')}/{o['metadata']['name']}": o
                        for o in items}
        except EcsmActorsError as e:
            errors.append(f"registry: {e}")
        ps = None
        try:
            ps = self._ps()
        except EcsmActorsError as e:
            errors.append(f"supervisor: {e}")
        ecsm = None
        if self.tracker.needs_ecsm() and at - self._last_ecsm >= 0.5:
            self._last_ecsm = at
            try:
                # Ground truth from the simulator's admin API (never faulted), so a probe
                # sees the platform heal even while ECSM's own API is made to fail.
                services_now = self.admin.state().get("services") or []
                ecsm = tuple(EcsmServiceView.from_wire(s) for s in services_now)
            except EcsmActorsError as e:
                errors.append(f"ecsm: {e}")
        self.tracker.evaluate(Observation(at=at, services=services, ps=ps, ecsm=ecsm))
        if services is not None and at - self._last_load >= self.load_interval:
            self._last_load = at
            self._apply_loads(services)
        current_lag = None
        if services is not None:
            snap = Snapshot(objects={("ECSMService", k): v for k, v in services.items()})
            current_lag = lag(snap)
        self._status = MonitorStatus(
            lag=current_lag if current_lag is not None else self._status.lag,
            services=len(services) if services is not None else self._status.services,
            ticks=ticks, last_error="; ".join(errors))

    def _apply_loads(self, services: dict[str, dict[str, Any]]) -> None:
        for key, cpu in self.loads.items():
            obj = services.get(key)
            if obj is None:
                continue
            namespace, name = key.split("/", 1)
            try:
                self.admin.set_load(ecsm_name(namespace, name, revision_of(obj)), cpu=cpu)
            except EcsmActorsError as e:
                # The current revision may not exist on ECSM yet (rolling out): next time.
                logger.debug("load of %s not applied: %s", key, e)
