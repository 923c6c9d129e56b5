"""The HPA reconciler: one sync of one ECSMHpa against its ECSMService and ECSM.

Runs in the hpa-controller process, in the runtime's worker threads (one key at a time
per worker; the reconciler itself holds no per-key state — everything it remembers is in
the HPA status, so a restarted controller carries on where the last one stopped).

One sync:

1. read the ECSMHpa fresh (gone → done); parse its spec (unusable → TerminalError);
2. read the target ECSMService (absent → AbleToScale=False FailedGetScale; Static →
   AbleToScale=False StaticStrategy); the current count is its
   ``spec.deploymentStrategy.replicas`` — never its status;
3. unless paused, list the containers of ``status.underlyingServiceIDs`` on ECSM (ECSM
   unreachable → the error propagates and the runtime retries with backoff);
4. :func:`~ecsm_actors.controllers.hpa.algorithm.decide`;
5. on a new count, write ONLY ``spec.deploymentStrategy.replicas`` of the target through
   the registry, re-reading and re-applying on Conflict (a concurrent edit of any other
   field is kept);
6. write the status when it differs from the stored one (Conflict → re-read, rebuild);
7. ``Result(requeue_after=hpa.sync_period)``.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ecsm_actors import protocol
from ecsm_actors.config import Config
from ecsm_actors.controllers.hpa.algorithm import Decision, DecisionCode, decide, unable
from ecsm_actors.controllers.hpa.samples import (
    CpuStartup,
    InstanceSample,
    samples_from_containers,
)
from ecsm_actors.controllers.hpa.spec import HpaSpec, parse_spec
from ecsm_actors.controllers.hpa.status import build_status, history_of
from ecsm_actors.errors import Conflict, NotFound
from ecsm_actors.runtime import ReconcileContext, Result
from ecsm_actors.runtime.events import involved_of, recorder_of

logger = logging.getLogger(__name__)

HPA_KIND = "ECSMHpa"
TARGET_KIND = "ECSMService"
#: Attempts at a write that keeps meeting Conflicts before the workqueue takes over.
CONFLICT_ATTEMPTS = 5


class ContainerLister(Protocol):
    """What the reconciler needs from ECSM (``Clientset.containers`` satisfies it)."""

    def list_all_by_service(self, service_ids: list[str]) -> list[Any]: ...


class HpaReconciler:
    """Implements :class:`ecsm_actors.runtime.Reconciler` for ECSMHpa."""

    def __init__(self, cfg: Config, *,
                 containers: Callable[[], ContainerLister] | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self._cfg = cfg
        self._containers_factory = containers or self._default_containers
        self._containers: ContainerLister | None = None
        self._lock = threading.Lock()
        self._now = wall_clock
        self._cpu_startup = CpuStartup(
            initialization_period=cfg.hpa.cpu_initialization_period,
            readiness_delay=cfg.hpa.initial_readiness_delay)

    def _default_containers(self) -> ContainerLister:
        from ecsm_actors.ecsm.clientset import Clientset

        return Clientset.from_config(self._cfg).containers

    def _lister(self) -> ContainerLister:
        with self._lock:
            if self._containers is None:
                self._containers = self._containers_factory()
            return self._containers

    def reconcile(self, ctx: ReconcileContext, key: str) -> Result:
        namespace, name = protocol.split_key(key)
        try:
            hpa = ctx.registry.get(HPA_KIND, namespace, name)
        except NotFound:
            return Result()
        if (hpa.get("metadata") or {}).get("deletionTimestamp"):
            return Result()
        hpa_cfg = self._cfg.hpa
        spec = parse_spec(hpa.get("spec"), default_tolerance=hpa_cfg.tolerance,
                          downscale_stabilization=hpa_cfg.downscale_stabilization)
        now = self._now()
        decision = self._decide(ctx, namespace, spec, hpa, now)
        if decision.rescale:
            self._scale_target(ctx, namespace, spec.target_name, decision.desired_replicas)
            logger.info("key=%s scaled %s/%s from %d to %d: %s", key, namespace,
                        spec.target_name, decision.current_replicas,
                        decision.desired_replicas, decision.reason)
            recorder_of(ctx).normal(involved_of(hpa), "SuccessfulRescale",
                                f"New size: {decision.desired_replicas} (was "
                                f"{decision.current_replicas}); reason: {decision.reason}")
        elif decision.code == DecisionCode.UNABLE:
            recorder_of(ctx).warning(involved_of(hpa), next(
                (c.reason for c in decision.conditions if not c.status), "FailedGetScale"),
                decision.reason)
        else:
            logger.debug("key=%s %s: %s", key, decision.code, decision.reason)
        self._write_status(ctx, hpa, decision, now)
        return Result(requeue_after=hpa_cfg.sync_period)

    def _decide(self, ctx: ReconcileContext, namespace: str, spec: HpaSpec,
                hpa: dict[str, Any], now: float) -> Decision:
        history = history_of(hpa.get("status"), now=now)
        previous_current = (hpa.get("status") or {}).get("currentReplicas")
        if not isinstance(previous_current, int):
            previous_current = 0
        try:
            target = ctx.registry.get(TARGET_KIND, namespace, spec.target_name)
        except NotFound:
            return unable(current=previous_current, reason="FailedGetScale",
                          message=f"the HPA controller was unable to get the target's "
                                  f"current scale: ECSMService {namespace}/"
                                  f"{spec.target_name} not found", history=history)
        strategy = (target.get("spec") or {}).get("deploymentStrategy") or {}
        if strategy.get("type") != "Dynamic":
            return unable(current=previous_current, reason="StaticStrategy",
                          message=f"ECSMService {namespace}/{spec.target_name} has a "
                                  f"{strategy.get('type') or 'missing'} deploymentStrategy; "
                                  f"only Dynamic services have a replica count to scale",
                          history=history)
        current = strategy.get("replicas")
        if not isinstance(current, int) or current < 0:
            current = 1
        samples = [] if spec.paused else self._samples(target, now)
        return decide(spec, current=current, samples=samples, history=history, now=now,
                      metric_max_age=self._cfg.hpa.metric_max_age,
                      cpu_startup=self._cpu_startup)

    def _samples(self, target: dict[str, Any], now: float) -> list[InstanceSample]:
        ids = (target.get("status") or {}).get("underlyingServiceIDs") or []
        ids = [i for i in ids if isinstance(i, str) and i]
        if not ids:
            return []
        containers = self._lister().list_all_by_service(ids)
        return samples_from_containers(containers, timestamp=now)

    def _scale_target(self, ctx: ReconcileContext, namespace: str, name: str,
                      replicas: int) -> None:
        """Set ``spec.deploymentStrategy.replicas`` and nothing else, despite Conflicts."""
        for attempt in range(CONFLICT_ATTEMPTS):
            target = ctx.registry.get(TARGET_KIND, namespace, name)
            spec = target.get("spec") or {}
            strategy = spec.get("deploymentStrategy") or {}
            if strategy.get("type") != "Dynamic" or strategy.get("replicas") == replicas:
                return  # changed under us: the next sync decides again
            updated = copy.deepcopy(target)
            updated["spec"]["deploymentStrategy"]["replicas"] = replicas
            updated.pop("status", None)
            try:
                ctx.registry.update(updated)
                return
            except Conflict:
                logger.debug("conflict scaling %s/%s (attempt %d)", namespace, name,
                             attempt + 1)
        raise Conflict(f"ECSMService {namespace}/{name} kept changing while the HPA scaled "
                       f"it to {replicas}")

    def _write_status(self, ctx: ReconcileContext, hpa: dict[str, Any], decision: Decision,
                      now: float) -> None:
        namespace, name = protocol.split_key(_key_of(hpa))
        for _ in range(CONFLICT_ATTEMPTS):
            generation = (hpa.get("metadata") or {}).get("generation") or 0
            status = build_status(hpa.get("status"), decision, generation=generation, now=now)
            if status == hpa.get("status"):
                return
            try:
                ctx.update_status({**hpa, "status": status})
                return
            except Conflict:
                try:
                    hpa = ctx.registry.get(HPA_KIND, namespace, name)
                except NotFound:
                    return
        raise Conflict(f"ECSMHpa {namespace}/{name} kept changing while its status was "
                       f"written")


def _key_of(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name')}"
