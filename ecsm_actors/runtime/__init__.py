"""The controller runtime: what every controller process runs (DESIGN §6).

Owns the reconcile contract (:class:`Result`, :class:`Reconciler`,
:class:`ReconcileContext`, :class:`ControllerSpec`) and the :class:`Controller` that wires
an informer, a workqueue and reconcile workers together. Runs in controller processes.

Submodules: ``types`` (the contract), ``controller`` (workers, outcomes, liveness),
``echo`` (ignoring the echo of our own status writes), ``conditions`` (the Degraded
condition the runtime writes), ``metrics`` (counters and the latency histogram),
``ratelimit`` (one WARNING per cause and interval for garbage a peer keeps sending),
``events`` (the event recorder, also used by the supervisor), ``sweep`` (a spec's periodic
sweep, run on the workqueue), ``leader`` (leader election: one leader per controller kind
and store, on etcd).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecsm_actors.lazy import lazy_exports

if TYPE_CHECKING:
    from ecsm_actors.runtime.controller import Controller
    from ecsm_actors.runtime.types import ControllerSpec, ReconcileContext, Reconciler, Result

# Imported on first use: the supervisor imports ``runtime.events`` (its event recorder)
# and must not pay for the informer and the workqueue the controller pulls in.
__getattr__, __dir__ = lazy_exports(__name__, {
    "Controller": "controller", "ControllerSpec": "types", "ReconcileContext": "types",
    "Reconciler": "types", "Result": "types"})

__all__ = ["Controller", "ControllerSpec", "ReconcileContext", "Reconciler", "Result"]
