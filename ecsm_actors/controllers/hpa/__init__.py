"""The HPA controller: autoscales ECSMServices from ECSM container usage (DESIGN §7).

Runs as ``python -m ecsm_actors controller hpa`` (supervisor child ``hpa-controller``) on
the controller runtime: informer on ECSMHpa, workqueue, ``controller.workers`` workers.
Independent of the service controller: it only writes the target ECSMService's
``spec.deploymentStrategy.replicas`` and reads its ``status.underlyingServiceIDs``.

Parts, from pure to I/O:

* ``spec``      — the ECSMHpa spec with the autoscaling/v2 defaults;
* ``samples``   — ECSM containers → per-instance readiness and utilization;
* ``replicas``  — one metric's proposal (ratio, tolerance, missing / unready instances);
* ``behavior``  — stabilization windows and Pods/Percent rate policies;
* ``history``   — recommendations and scale events kept in the status;
* ``algorithm`` — one whole decision (pure, clock passed in);
* ``status``    — the status block written back;
* ``controller``— the reconciler (registry + ECSM I/O).
"""

from __future__ import annotations

from ecsm_actors.config import Config
from ecsm_actors.controllers.hpa.controller import HpaReconciler
from ecsm_actors.runtime import ControllerSpec

NAME = "hpa-controller"
KIND = "ECSMHpa"


def build(cfg: Config) -> ControllerSpec:
    """The ControllerSpec the runtime runs for ``controller hpa``."""
    return ControllerSpec(name=NAME, kind=KIND, reconciler=HpaReconciler(cfg),
                          workers=cfg.controller.workers)


__all__ = ["HpaReconciler", "build"]
