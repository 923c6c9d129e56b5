"""The controller runtime: what every controller process runs (DESIGN §6).

Owns the reconcile contract (:class:`Result`, :class:`Reconciler`,
:class:`ReconcileContext`, :class:`ControllerSpec`) and the :class:`Controller` that wires
an informer, a workqueue and reconcile workers together. Runs in controller processes.

Submodules: ``types`` (the contract), ``controller`` (workers, outcomes, liveness),
``echo`` (ignoring the echo of our own status writes), ``conditions`` (the Degraded
condition the runtime writes), ``metrics`` (counters and the latency histogram),
``ratelimit`` (one WARNING per cause and interval for garbage a peer keeps sending).
"""

from __future__ import annotations

from ecsm_actors.runtime.controller import Controller
from ecsm_actors.runtime.types import ControllerSpec, ReconcileContext, Reconciler, Result

__all__ = ["Controller", "ControllerSpec", "ReconcileContext", "Reconciler", "Result"]
