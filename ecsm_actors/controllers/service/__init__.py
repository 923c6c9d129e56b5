"""The service controller: ECSMService → ECSM services, one per template revision.

Runs as ``python -m ecsm_actors controller service`` on the controller runtime.
Submodules, bottom up: :mod:`.naming` (ownership by name), :mod:`.mapping` (spec → ECSM
bodies), :mod:`.rollout` (maxSurge/maxUnavailable), :mod:`.model` and :mod:`.plan` (the pure
planner), :mod:`.observe` (ECSM answers → planner views, node states),
:mod:`.dependencies` (dependsOn), :mod:`.history` (revision annotations), :mod:`.status`
(status and conditions), :mod:`.actuator` (actions → ECSM calls), :mod:`.capacity`
(node memory room, placements), :mod:`.preemption` (victim selection, restoration order),
:mod:`.admission` (the shared admission: claims, records), :mod:`.capacity_pass` (one
pass's restore, admit, preempt), :mod:`.sweep` (drift found by one periodic listing),
:mod:`.controller` (the Reconciler that ties them together).
"""

from __future__ import annotations

from ecsm_actors.config import Config
from ecsm_actors.runtime import ControllerSpec

#: The kind it reconciles (``controllers.main`` sends its first LIST before ``build``).
KIND = "ECSMService"


def build(cfg: Config) -> ControllerSpec:
    """The controller's spec for the runtime (``controllers.main`` calls this)."""
    from ecsm_actors.controllers.service.controller import ServiceReconciler
    from ecsm_actors.ecsm.clientset import Clientset

    reconciler = ServiceReconciler(cfg, Clientset.from_config(cfg))
    return ControllerSpec(name="service-controller", kind=KIND,
                          reconciler=reconciler, workers=cfg.controller.workers,
                          sweep=reconciler.drift)
