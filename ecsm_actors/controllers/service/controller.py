"""The service Reconciler: one ECSMService key → ECSM converged one step, status written.

Runs in the service-controller process, on the runtime's worker threads (one key is never
reconciled by two workers at once; different keys run concurrently, sharing the thread-safe
ECSM clientset and the node-state cache).

One pass: read the object fresh; on deletion delete every owned ECSM service, then drop
the finalizer — only after a listing that is certainly complete (its pages agreed, every
answer checked) shows no owned service that ECSM confirms by id; otherwise list the owned
ECSM services by name (one call; suspected duplicates are judged by the rule of
:mod:`.observe`, with a GET by id only then), record the
finalizer and the revision annotation (a registry UPDATE, only when missing), hold back a
first deployment until every ``dependsOn`` is Available, list containers only when
something is unhealthy or rolling (a second call), run the pure planner, apply its actions,
write the status when it changed, and ask to be looked at again soon while converging
(a quarter of ``poll_interval`` after a pass that acted — a started instance is often up
by then — doubling up to ``poll_interval`` while it only waits; at the drift pace while
only waiting for room). A settled pass is not requeued: it records what it saw, and the
periodic sweep of :mod:`.sweep` (every ``service.drift_interval``, one paged listing of
every ECSM service) enqueues the key when ECSM stops matching that — ECSM has no watch,
so that is how drift (deleted, scaled or stopped behind our back, crashed containers,
dead nodes) is repaired.

Errors: ECSM unreachable / 5xx / undecodable / an inconsistent listing → requeue with
backoff (no action taken on it), and after
``service.unavailable_threshold`` consecutive ones, Degraded/EcsmUnavailable; ECSM 4xx
(unknown image or node…) → TerminalError with ECSM's message (the runtime records it as
Degraded), and so is a ``vsoa.passwordFile`` that cannot be used (:mod:`.secret_file`,
read on every pass, its content part of the revision); an ECSM "name exists" on create
means the service is already there (adopted on the next pass). A dependency cycle holds
every member back with Degraded/DependencyCycle and is re-checked at the drift pace (no
retries), so breaking it anywhere frees them all.
Nothing here is remembered between passes except the failure counter, the node cache and
the sweep's records (rebuilt by the first pass of every key), so a controller killed at any
line is replaced without loss.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ecsm_actors.api import template_hash
from ecsm_actors.api.names import format_timestamp
from ecsm_actors.config import Config
from ecsm_actors.controllers.service import (
    dependencies,
    events,
    history,
    mapping,
    observe,
    secret_file,
)
from ecsm_actors.controllers.service import status as status_mod
from ecsm_actors.controllers.service.actuator import Actuator, rejected
from ecsm_actors.controllers.service.admission import Admission, increases, records_of
from ecsm_actors.controllers.service.capacity_pass import CapacityPass, Outcome, conditions
from ecsm_actors.controllers.service.model import Desired, Plan, Policy, RevisionView
from ecsm_actors.controllers.service.naming import owned_prefix, split_key
from ecsm_actors.controllers.service.plan import needs_containers, plan
from ecsm_actors.controllers.service.rollout import resolve
from ecsm_actors.controllers.service.sweep import DriftSweep, fingerprint
from ecsm_actors.errors import (
    Conflict,
    EcsmApiError,
    EcsmDecodeError,
    EcsmNotFound,
    EcsmUnavailable,
    Invalid,
    NotFound,
    RegistryError,
    TerminalError,
)
from ecsm_actors.runtime import ReconcileContext, Result
from ecsm_actors.runtime.ratelimit import WarningLimiter

logger = logging.getLogger(__name__)

FINALIZER = "ecsm.sh/service-cleanup"


class ServiceReconciler:
    """See the module docstring. ``clientset`` is the ECSM Clientset (or a fake)."""

    def __init__(self, cfg: Config, clientset: Any,
                 *, wall_clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._cfg = cfg
        self._settings = cfg.service
        self._ecsm = clientset
        self._actuator = Actuator(clientset)
        self._wall = wall_clock
        self._nodes = observe.NodeStates(lambda: self._ecsm.nodes.list_all(), monotonic)
        self._lock = threading.Lock()
        self._ecsm_failures: dict[str, int] = {}
        #: Passes in a row that found the key still converging (see :meth:`_relook`).
        self._converging: dict[str, int] = {}
        #: Garbage ECSM keeps sending: one WARNING per cause and minute, not per pass.
        self._garbage = WarningLimiter(clock=monotonic)
        #: Node room shared by the workers; waiting services' claims (see .admission).
        self._admission = Admission(clientset, max_age=self._settings.node_refresh_interval,
                                    claim_ttl=3 * self._settings.drift_interval
                                    + self._settings.poll_interval,
                                    clock=monotonic)
        self._capacity = CapacityPass(self._admission, clientset, self._actuator, self._list,
                                      lambda: format_timestamp(self._wall()))
        #: What settled passes saw, and the runtime's periodic sweep over it (.sweep).
        self.drift = DriftSweep(clientset, self._nodes, interval=self._settings.drift_interval,
                                stranded=self._stranded)

    def _stranded(self) -> list[str]:
        """The keys whose last pass failed on ECSM (the sweep retries them once ECSM
        answers it, see :mod:`.sweep`)."""
        with self._lock:
            return list(self._ecsm_failures)

    # -- entry point ------------------------------------------------------------------

    def reconcile(self, ctx: ReconcileContext, key: str) -> Result:
        namespace, name = split_key(key)
        self.drift.forget(key)  # watched by the sweep again only once a pass settles it
        try:
            obj = ctx.registry.get(ctx.kind, namespace, name)  # NotFound: the runtime is done
        except NotFound:
            with self._lock:
                self._converging.pop(key, None)
                self._ecsm_failures.pop(key, None)
            raise
        try:
            result = self._reconcile(ctx, namespace, name, obj)
        except EcsmApiError as e:
            if e.is_client_error:
                raise rejected("a request", e) from e
            return self._ecsm_trouble(ctx, key, e)
        except (EcsmUnavailable, EcsmDecodeError) as e:
            return self._ecsm_trouble(ctx, key, e)
        with self._lock:
            failures = self._ecsm_failures.pop(key, 0)
        if failures >= self._settings.unavailable_threshold:
            events.recorder_of(ctx).normal(events.involved_of(obj), "EcsmAvailable",
                                f"ECSM answers again after {failures} failed passes")
        return result

    def _reconcile(self, ctx: ReconcileContext, namespace: str, name: str,
                   obj: dict[str, Any]) -> Result:
        meta = obj.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            return self._finalize(ctx, namespace, name, obj)
        spec = obj.get("spec") or {}
        template = spec.get("template") or {}
        secret = secret_file.password_from_file(spec)  # refused: TerminalError
        try:
            revision = template_hash(template, name=name, secret=secret)
        except Invalid as e:
            raise TerminalError(f"spec.template: {e}", reason="InvalidSpec") from e

        observed = self._list(namespace, name)
        if observe.suspects(observed):
            observed = self._without_duplicates(namespace, name, observed)

        desired = self._desired(spec, revision)
        obj = self._ensure_metadata(ctx, obj, revision, template, desired.history_limit,
                                    {v.revision for v in observed})

        if not observed and dependencies.depends_on(obj):
            verdict = dependencies.check(name, obj, self._getter(ctx, namespace))
            if not verdict.ready:
                return self._hold_back(ctx, obj, revision, desired, verdict)

        views = observed
        fresh = self._settings.node_refresh_interval
        if needs_containers(desired, views) and views:
            ids = [v.service_id for v in views]
            views = observe.attach(views, self._ecsm.containers.list_all_by_service(ids))
            fresh = min(fresh, self._settings.poll_interval)
        _, down = self._nodes.get(fresh)
        result = plan(desired, views, down)
        spec_pw = secret_file.with_password(spec, secret)
        outcome: Outcome | None = None
        if records_of(obj) or increases(result, views, desired.policy):
            outcome = self._capacity.run(
                ctx, f"{namespace}/{name}", obj, desired, views, down,
                lambda p: self._actuator.apply(namespace, name, spec_pw, p.actions))
            obj, result = outcome.obj, outcome.plan
        else:
            self._admission.claim(f"{namespace}/{name}", 0, None)  # waits for nothing
            self._actuator.apply(namespace, name, spec_pw, result.actions)
        events.for_actions(events.recorder_of(ctx), obj, views, desired, result,
                           annotations=meta.get("annotations"))
        self._write_status(ctx, obj, revision, result, outcome=outcome)
        settled = result.idle and result.summary.complete and not (
            outcome is not None and outcome.waiting)
        # a service only waiting for room is looked at again at the drift pace (its
        # claim keeps that room meanwhile), not at the poll pace
        stalled = result.idle and outcome is not None and outcome.stalled
        key = f"{namespace}/{name}"
        if settled:  # no requeue: the sweep enqueues it when ECSM stops matching this
            every = desired.nodes if desired.policy is Policy.DYNAMIC and not (
                spec.get("deploymentStrategy") or {}).get("nodePool") else None
            self.drift.settled(key, fingerprint(views, desired.nodes, down, every))
            with self._lock:
                self._converging.pop(key, None)
            return Result()
        if stalled:
            with self._lock:
                self._converging.pop(key, None)
            return Result(requeue_after=self._settings.drift_interval)
        return Result(requeue_after=self._relook(key, acted=not result.idle))

    def _relook(self, key: str, *, acted: bool) -> float:
        """When to look again at a converging key: a quarter of ``poll_interval`` right
        after a pass that acted (a started instance is often up by then), doubling on each
        pass that only waited, up to ``poll_interval``."""
        with self._lock:
            passes = 0 if acted else self._converging.get(key, 0) + 1
            self._converging[key] = passes
        return self._settings.poll_interval * 2.0 ** (min(passes, 2) - 2)

    # -- observation ------------------------------------------------------------------

    def _list(self, namespace: str, name: str) -> list[RevisionView]:
        """The owned revisions, from a listing whose pages agreed (else EcsmDecodeError:
        nothing is decided on a list that could have been misread)."""
        listing = self._ecsm.services.collect(name=owned_prefix(namespace, name))
        if not listing.certain:
            raise EcsmDecodeError(f"ECSM's list of {owned_prefix(namespace, name)}* is "
                                  f"inconsistent: {'; '.join(listing.doubts)[:300]}",
                                  cause="an inconsistent service list")
        return observe.revisions(listing.items, namespace, name)

    def _without_duplicates(self, namespace: str, name: str,
                            observed: list[RevisionView]) -> list[RevisionView]:
        """Suspected duplicates, judged by the rule of :mod:`.observe`: phantoms ignored,
        confirmed extras deleted; returns what the planner should see."""
        found = observe.confirm(observed, self._ecsm.services.get, namespace, name)
        for v in found.phantoms:
            self._garbage.warn(logger, "phantom row", "key=%s/%s ECSM lists service %s "
                               "(revision %s) but has no such service: phantom row ignored",
                               namespace, name, v.service_id, v.revision)
        for v in found.extras:
            logger.warning("key=%s/%s deleting duplicate ECSM service %s (revision %s), "
                           "confirmed by id", namespace, name, v.service_id, v.revision)
            self._actuator.delete(v.service_id)
        return list(found.views)

    def _desired(self, spec: dict[str, Any], revision: str) -> Desired:
        strategy = spec.get("deploymentStrategy") or {}
        policy = Policy(mapping.policy_of(spec))
        if policy is Policy.STATIC:
            nodes = tuple(str(n) for n in strategy.get("nodes") or ())
            replicas = len(nodes)
        else:
            nodes = tuple(str(n) for n in strategy.get("nodePool") or ())
            if not nodes:  # an empty pool means every node ECSM knows
                nodes, _ = self._nodes.get(self._settings.node_refresh_interval)
            replicas = int(strategy.get("replicas") or 0)
        bounds = resolve(spec.get("rollout"), replicas)
        template = spec.get("template") or {}
        return Desired(revision=revision, policy=policy, replicas=replicas, nodes=nodes,
                       max_surge=bounds.max_surge, max_unavailable=bounds.max_unavailable,
                       history_limit=bounds.history_limit,
                       load=mapping.action_of(template) == "load")

    def _getter(self, ctx: ReconcileContext,
                namespace: str) -> Callable[[str], dict[str, Any] | None]:
        def get(dep: str) -> dict[str, Any] | None:
            try:
                return ctx.registry.get(ctx.kind, namespace, dep)
            except NotFound:
                return None
        return get

    # -- registry writes ---------------------------------------------------------------

    def _ensure_metadata(self, ctx: ReconcileContext, obj: dict[str, Any], revision: str,
                         template: dict[str, Any], history_limit: int,
                         on_ecsm: set[str]) -> dict[str, Any]:
        meta = dict(obj.get("metadata") or {})
        finalizers = list(meta.get("finalizers") or [])
        annotations = history.updated_annotations(meta.get("annotations"), current=revision,
                                                  template=template,
                                                  history_limit=history_limit,
                                                  on_ecsm=on_ecsm)
        if FINALIZER in finalizers and annotations is None:
            return obj
        if FINALIZER not in finalizers:
            meta["finalizers"] = [*finalizers, FINALIZER]
        if annotations is not None:
            meta["annotations"] = annotations
        updated = ctx.registry.update({**obj, "metadata": meta})  # Conflict → retried
        return updated

    def _write_status(self, ctx: ReconcileContext, obj: dict[str, Any], revision: str,
                      result: Plan, *, waiting: tuple[str, ...] = (),
                      cycle: tuple[str, ...] = (), outcome: Outcome | None = None) -> None:
        conds = status_mod.conditions_for(result.summary, revision=revision,
                                          waiting=waiting, cycle=cycle)
        if outcome is not None:
            conds.update(outcome.conditions)
        else:  # no capacity work this pass: clear what an earlier one said
            conds.update(conditions(obj, 0, []))
        new = status_mod.build(obj.get("status"),
                               generation=int((obj.get("metadata") or {}).get("generation")
                                              or 0),
                               revision=revision, summary=result.summary,
                               conditions=conds, now=format_timestamp(self._wall()))
        if outcome is not None:
            for field_, value in (("preemptions", outcome.records),
                                  ("preemptionsGiven", outcome.given)):
                if value:
                    new[field_] = value
                else:
                    new.pop(field_, None)
        if status_mod.same(obj.get("status"), new):
            return
        events.for_status(events.recorder_of(ctx), obj, new)
        ctx.update_status({**obj, "status": new})

    def _hold_back(self, ctx: ReconcileContext, obj: dict[str, Any], revision: str,
                   desired: Desired, verdict: dependencies.DependencyVerdict) -> Result:
        result = plan(desired, [], ())
        nothing = Plan(actions=(), summary=result.summary)
        self._write_status(ctx, obj, revision, nothing, waiting=verdict.waiting,
                           cycle=verdict.cycle)
        if verdict.cycle:
            # Held back until someone breaks the cycle: look again at the drift pace,
            # so breaking it anywhere frees every member (no retries meanwhile).
            logger.error("key=%s/%s dependency cycle: %s",
                         (obj.get("metadata") or {}).get("namespace"),
                         (obj.get("metadata") or {}).get("name"), " -> ".join(verdict.cycle))
            return Result(requeue_after=self._settings.drift_interval)
        return Result(requeue_after=self._settings.poll_interval)

    def _ecsm_trouble(self, ctx: ReconcileContext, key: str, e: Exception) -> Result:
        with self._lock:
            failures = self._ecsm_failures.get(key, 0) + 1
            self._ecsm_failures[key] = failures
        if isinstance(e, EcsmDecodeError):
            self._garbage.warn(logger, e.cause, "key=%s ECSM answer unusable (%d in a row): "
                               "%s", key, failures, e)
        else:
            logger.warning("key=%s ECSM unavailable (%d in a row): %s", key, failures, e)
        if failures >= self._settings.unavailable_threshold:
            self._mark_unavailable(ctx, key, f"{failures} consecutive ECSM failures: {e}")
            events.recorder_of(ctx).warning(events.object_ref(ctx.kind, *split_key(key)),
                                 "EcsmUnavailable", f"ECSM unavailable: {e}")
        return Result(requeue=True)

    def _mark_unavailable(self, ctx: ReconcileContext, key: str, message: str) -> None:
        namespace, name = split_key(key)
        value = status_mod.ConditionValue(status="True", reason="EcsmUnavailable",
                                          message=message[:500])
        try:
            obj = ctx.registry.get(ctx.kind, namespace, name)
            current = next((c for c in (obj.get("status") or {}).get("conditions") or ()
                            if c.get("type") == status_mod.DEGRADED), None)
            if current and current.get("reason") == "EcsmUnavailable" \
                    and current.get("status") == "True":
                return  # already said; do not rewrite it on every failure
            new = status_mod.with_condition(obj.get("status"), status_mod.DEGRADED, value,
                                            format_timestamp(self._wall()))
            ctx.update_status({**obj, "status": new})
        except (Conflict, NotFound) as err:
            logger.info("key=%s Degraded/EcsmUnavailable not written: %s", key, err)
        except RegistryError as err:
            logger.warning("key=%s Degraded/EcsmUnavailable not written: %s", key, err)

    # -- deletion ----------------------------------------------------------------------

    def _finalize(self, ctx: ReconcileContext, namespace: str, name: str,
                  obj: dict[str, Any]) -> Result:
        meta = obj.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        with self._lock:
            self._converging.pop(f"{namespace}/{name}", None)
        for claim in (f"{namespace}/{name}", f"{namespace}/{name}#restore"):
            self._admission.claim(claim, 0, None)  # it waits for nothing now
        if FINALIZER not in finalizers:
            return Result()
        owned = self._list(namespace, name)
        for view in owned:
            logger.info("key=%s/%s deleting ECSM service %s (revision %s)", namespace, name,
                        view.service_id, view.revision)
            self._actuator.delete(view.service_id)
        if owned and self._still_listed(namespace, name):
            return Result(requeue_after=self._settings.poll_interval)  # ECSM still busy
        ctx.registry.update({**obj, "metadata": {
            **meta, "finalizers": [f for f in finalizers if f != FINALIZER]}})
        logger.info("key=%s/%s ECSM cleaned up, finalizer removed", namespace, name)
        return Result()

    def _still_listed(self, namespace: str, name: str) -> bool:
        """After the deletes: does a certain listing still show an owned service that a
        GET by id confirms? (A listed row ECSM denies by id is a phantom, not an orphan.)"""
        remaining = self._list(namespace, name)
        for view in remaining:
            try:
                self._ecsm.services.get(view.service_id)
            except EcsmNotFound:
                self._garbage.warn(logger, "phantom row", "key=%s/%s ECSM still lists "
                                   "service %s (revision %s) but has no such service: "
                                   "phantom row ignored", namespace, name, view.service_id,
                                   view.revision)
                continue
            return True
        return False
