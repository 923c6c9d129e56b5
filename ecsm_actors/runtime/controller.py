"""The controller: an informer feeding a workqueue drained by N reconcile workers.

Runs in a controller process (``python -m ecsm_actors controller <name>``). Threads: one
informer, ``spec.workers`` workers (each with its own registry client; started once the
informer's first list is delivered), one liveness reporter. A spec's periodic sweep runs on
a worker too, as a reserved queue key (:mod:`.sweep`).

Invariants:

* A key is reconciled by one worker at a time; events arriving meanwhile cause exactly
  one more reconcile afterwards; a burst of updates collapses into few reconciles.
* Retries (``add_rate_limited``) wait the larger of the key's exponential backoff and a
  turn in a token bucket shared by all keys (``controller.retry_qps`` /
  ``retry_burst``, client-go's default controller rate limiter); ``stats`` shows the
  bucket as ``retry_budget``.
* Outcomes: done → ``forget``; ``Result(requeue_after=t)`` → ``forget`` + ``add_after``;
  ``Result(requeue=True)`` → ``add_rate_limited``; an exception → ``add_rate_limited``
  and WARNING; ``NotFound`` → done (the object is gone); :class:`TerminalError` →
  ``forget``, ERROR and a ``Degraded`` condition, no retry. After
  ``controller.failure_threshold`` consecutive failures the key keeps retrying at its
  capped backoff and a ``Degraded/ReconcileFailing`` condition says why; the first
  success afterwards turns it to False. Nothing is ever dropped silently. An undecodable
  peer answer (:class:`~ecsm_actors.errors.EcsmDecodeError`) is the same retried error,
  but its WARNING is rate-limited per cause (:mod:`.ratelimit`); the other retries of it
  are logged at DEBUG.
* The worker loop is this process's one catch-all: a reconciler bug is a retried error,
  never a dead worker.
* One outcome line per reconcile: ``key=ns/name result=... duration=..ms``.
* Only the leader of its kind reconciles (:mod:`.leader`: an etcd lease per kind; with
  LMDB always this instance): a standby's informer and queue run as a leader's, its
  workers take no key; a worker that finds leadership gone after taking a key puts it
  back. ``stats`` and every liveness report carry ``election`` (role, transitions).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from ecsm_actors import protocol
from ecsm_actors.clock import Clock, RealClock
from ecsm_actors.config import Config
from ecsm_actors.errors import EcsmActorsError, EcsmDecodeError, NotFound, TerminalError
from ecsm_actors.informer import EventSource, Informer, RegistryReader
from ecsm_actors.informer.ahead import FirstList
from ecsm_actors.liveness import LivenessReporter
from ecsm_actors.runtime import conditions
from ecsm_actors.runtime.echo import EchoFilter
from ecsm_actors.runtime.events import EventRecorder
from ecsm_actors.runtime.leader import AlwaysLeader, LeaderElector, elector_for
from ecsm_actors.runtime.metrics import ControllerMetrics
from ecsm_actors.runtime.ratelimit import WarningLimiter
from ecsm_actors.runtime.sweep import SWEEP_KEY, SweepRunner
from ecsm_actors.runtime.types import ControllerSpec, ReconcileContext, Result
from ecsm_actors.workqueue import WorkQueue, controller_rate_limiter

logger = logging.getLogger(__name__)


def _default_registry_factory(cfg: Config) -> Callable[[], Any]:
    from ecsm_actors.registry.client import RegistryClient

    # A call retries within one request_timeout in all, not request_deadline: a worker
    # waits on a down registry no longer than it did before the client retried, and the
    # workqueue retries the reconcile after that.
    return lambda: RegistryClient.from_config(cfg, deadline=cfg.registry.request_timeout)


def _default_subscriber_factory(cfg: Config) -> Callable[[], EventSource]:
    from ecsm_actors.registry.subscriber import HeadSubscriber

    # Every object kind: seq counts the mutations of all kinds, so gap detection needs
    # them all (but not the Event records, outside the count: topic ``Event.``).
    hwm = cfg.controller.event_buffer or cfg.registry.pub_hwm
    return lambda: HeadSubscriber(cfg.events_local_endpoint, kinds=protocol.KINDS,
                                  rcvhwm=hwm, max_frame=int(cfg.registry.max_frame_bytes))


def list_ahead(kind: str, cfg: Config) -> FirstList:
    """The first LIST of a controller of ``kind`` with ``cfg``'s registry, sent now from
    a thread of its own, ahead of the controller (:mod:`ecsm_actors.informer.ahead`):
    pass it to :class:`Controller` as ``first_list``."""
    return FirstList(kind, registry_factory=_default_registry_factory(cfg),
                     subscriber_factory=_default_subscriber_factory(cfg)).start()


class _Enqueuer:
    """The informer's handler: enqueue keys, minus the echoes of our own status writes."""

    def __init__(self, queue: WorkQueue, echo: EchoFilter) -> None:
        self._queue = queue
        self._echo = echo

    def on_add(self, key: str, resource_version: int) -> None:
        if self._echo.admit(key, resource_version):
            self._queue.add(key)

    on_update = on_add

    def on_add_all(self, items: list[tuple[str, int]]) -> None:
        self._queue.add_all(self._echo.admit_all(items))

    def on_delete(self, key: str, resource_version: int) -> None:
        self._echo.forget(key)
        self._queue.add(key)

    def on_resync(self, key: str, resource_version: int) -> None:
        self._queue.add(key, resync=True)


class Controller:
    """Runs ``spec.reconciler`` over every object of ``spec.kind``; see the module doc."""

    def __init__(
        self,
        spec: ControllerSpec,
        cfg: Config,
        registry_factory: Callable[[], Any] | None = None,
        *,
        subscriber_factory: Callable[[], EventSource] | None = None,
        clock: Clock | None = None,
        report_liveness: bool = True,
        leader: LeaderElector | AlwaysLeader | None = None,
        first_list: FirstList | None = None,
    ) -> None:
        self.spec = spec
        self.cfg = cfg
        settings = cfg.controller
        self._registry_factory = registry_factory or _default_registry_factory(cfg)
        self._clock: Clock = clock or RealClock()
        # client-go's default controller rate limiter: a retry waits the larger of its
        # key's backoff and its turn in a budget shared by all keys, so a mass failure
        # reaches ECSM at a bounded rate instead of all at once.
        limiter, self.retry_budget = controller_rate_limiter(
            base=settings.backoff_base, cap=settings.backoff_cap,
            jitter=settings.backoff_jitter, qps=settings.retry_qps,
            burst=settings.retry_burst, clock=self._clock)
        self.queue = WorkQueue(clock=self._clock, rate_limiter=limiter)
        self.echo = EchoFilter()
        self.metrics = ControllerMetrics()
        #: Events about the objects reconciled, sent through a registry client of its own
        #: (its flusher thread starts with the first event).
        self.recorder = EventRecorder(spec.name, self._registry_factory)
        #: The informer's handler (enqueues keys, minus our own status echoes).
        self.handler = _Enqueuer(self.queue, self.echo)
        self.informer = Informer(
            spec.kind, self.handler,
            registry_factory=self._reader_factory,
            subscriber_factory=subscriber_factory or _default_subscriber_factory(cfg),
            settings=settings, clock=self._clock, on_synced=self._synced,
            first_list=first_list)
        self._report_liveness = report_liveness
        self._liveness: LivenessReporter | None = None
        #: Whether this instance may reconcile (one leader per kind and store).
        self.leader = leader or elector_for(cfg, spec.name, on_change=self._leadership_changed)
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []
        self._failures: dict[str, int] = {}  # consecutive failures per key
        self._flagged: set[str] = set()  # keys carrying our Degraded/ReconcileFailing
        self._lock = threading.Lock()
        #: Undecodable peer answers: one WARNING per cause and minute, not per retry.
        self._decode_warnings = WarningLimiter(clock=self._clock.now)
        #: The spec's periodic sweep, on this queue (first run once the informer synced).
        self.sweeper = SweepRunner(spec.name, spec.sweep, self.queue, self.informer.keys,
                                   backoff_base=settings.backoff_base) \
            if spec.sweep is not None else None

    def _reader_factory(self) -> RegistryReader:
        return self._registry_factory()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Controller:
        logger.info("%s: starting (%s, %d workers)", self.spec.name, self.spec.kind,
                    self.spec.workers)
        if self._report_liveness:
            # The process's one context (the registry clients' too): one I/O thread.
            # Made before the informer starts: the informer reports its sync through it.
            self._liveness = LivenessReporter(
                zmq.Context.instance(), self.cfg.heartbeat_endpoint, self.spec.name,
                self.cfg.controller.heartbeat_interval, self.liveness_report)
        # The informer next: its list is on its way (a restart is ready once it synced)
        # while the rest starts.
        self.informer.start()
        if self._liveness is not None:
            self._liveness.start()
        self.leader.start()
        return self  # the workers start once the informer synced (see _synced)

    def _start_workers(self) -> None:
        with self._lock:
            if self._workers or self._stopping.is_set():
                return
            for i in range(self.spec.workers):
                t = threading.Thread(target=self._worker, args=(i,), name=f"worker-{i}",
                                     daemon=True)
                t.start()
                self._workers.append(t)

    def alive(self) -> bool:
        """False when a thread that must run died (a bug): the process should exit."""
        return self.informer.is_alive() and self.leader.alive()

    def stop(self, grace: float | None = None) -> bool:
        """Stop taking keys, let in-flight reconciles finish within ``grace`` seconds,
        stop the informer. Return whether every in-flight reconcile finished."""
        grace = self.cfg.controller.drain_grace if grace is None else grace
        self._stopping.set()
        drained = self.queue.shut_down_with_drain(grace)
        if not drained:
            logger.warning("%s: %d reconcile(s) still running after the %.1fs drain grace",
                           self.spec.name, self.queue.processing_len(), grace)
        self.informer.stop()
        with self._lock:
            workers = list(self._workers)
        for t in workers:
            t.join(timeout=0.5)
        self.leader.stop()  # after the drain: the lease released, a standby leads at once
        self.recorder.close()
        if self._liveness is not None:
            self._liveness.close()
        logger.info("%s: stopped", self.spec.name)
        return drained

    # -- observability -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        informer = self.informer.stats()
        return {
            **self.metrics.snapshot(),
            "synced": self.informer.has_synced(),
            "drift": informer["drift"],
            "queue_depth": len(self.queue),
            "delayed": self.queue.delayed_len(),
            "in_flight": self.queue.processing_len(),
            "retry_budget": self.retry_budget.stats(),
            "workers": self.spec.workers,
            "election": self.leader.stats(),
            "informer": informer,
            **({"sweep": self.sweeper.stats()} if self.sweeper is not None else {}),
        }

    def liveness_report(self) -> dict[str, Any]:
        return {"queue_depth": len(self.queue),
                "oldest_inflight_age": self.queue.oldest_processing_age(),
                "last_completed": self.metrics.last_completed,
                "stats": self.stats()}

    def _synced(self) -> None:
        """The informer delivered its first list: report "synced" at once, from its
        thread (the supervisor counts a restarted controller ready from this report),
        then start the workers. Before it they could only wait: started with the
        controller, their threads' starts competed with the first list for the CPU."""
        if self._liveness is not None:
            self._liveness.beat()
        self._start_workers()

    def _leadership_changed(self, leading: bool) -> None:
        if self._liveness is not None:
            self._liveness.beat()  # the new role shows in ``ps`` at once

    # -- workers ------------------------------------------------------------------------

    def _worker(self, index: int) -> None:
        while not self.informer.wait_for_sync(0.5):
            if self._stopping.is_set():
                return
        if index == 0 and self.sweeper is not None:
            self.sweeper.schedule()  # the first pass of every key has just been queued
        registry = self._registry_factory()
        ctx = self.context(registry, index)
        try:
            while True:
                if not self.leader.wait_leading(0.5):  # standby: keys wait in the queue
                    if self._stopping.is_set():
                        return
                    continue
                key, shutdown = self.queue.get()
                if shutdown or key is None:
                    return
                if not self.leader.begin():  # leadership lost meanwhile: put it back
                    self.queue.add(key)
                    self.queue.done(key)
                    continue
                try:
                    if key == SWEEP_KEY and self.sweeper is not None:
                        self.sweeper.run()
                    else:
                        self.process(ctx, key)
                finally:
                    self.leader.end()
                    self.queue.done(key)
        finally:
            registry.close()

    def context(self, registry: Any, worker: int = 0) -> ReconcileContext:
        """The context a worker passes to every reconcile (its own registry client)."""
        return ReconcileContext(registry=registry, kind=self.spec.kind, config=self.cfg,
                                echo=self.echo, queue=self.queue, worker=worker,
                                recorder=self.recorder)

    def process(self, ctx: ReconcileContext, key: str) -> None:
        """One reconcile of ``key`` and its outcome (what a worker does between ``get``
        and ``done``)."""
        start = time.perf_counter()
        try:
            result = self.spec.reconciler.reconcile(ctx, key)
        except NotFound:
            self._finish(key, start, "done (not found)", not_found=1)
        except TerminalError as e:
            self._terminal(ctx, key, start, e)
        except Exception as e:  # noqa: BLE001 - the worker loop is the catch-all
            self._failed(ctx, key, start, e)
        else:
            self._succeeded(ctx, key, start, result)

    def _ms(self, start: float) -> float:
        return (time.perf_counter() - start) * 1000.0

    def _finish(self, key: str, start: float, outcome: str, **counts: int) -> None:
        self.queue.forget(key)
        with self._lock:
            self._failures.pop(key, None)
            self._flagged.discard(key)
        self.metrics.observe((time.perf_counter() - start), **counts)
        logger.info("key=%s result=%s duration=%.1fms", key, outcome, self._ms(start))

    def _succeeded(self, ctx: ReconcileContext, key: str, start: float, result: Result) -> None:
        with self._lock:
            self._failures.pop(key, None)
            flagged = key in self._flagged
            self._flagged.discard(key)
        if result.requeue_after is not None:
            self.queue.forget(key)
            self.queue.add_after(key, result.requeue_after)
            outcome = f"requeue_after={result.requeue_after:.3f}s"
        elif result.requeue:
            self.queue.add_rate_limited(key)
            outcome = "requeue"
        else:
            self.queue.forget(key)
            outcome = "done"
        if flagged:
            conditions.write_condition(ctx, key, status="False",
                                       reason=conditions.REASON_RECOVERED,
                                       message="reconciling succeeded again",
                                       only_if_reason=conditions.REASON_FAILING)
        requeued = 1 if outcome != "done" else 0
        self.metrics.observe(time.perf_counter() - start, requeues=requeued)
        logger.info("key=%s result=%s duration=%.1fms", key, outcome, self._ms(start))

    def _terminal(self, ctx: ReconcileContext, key: str, start: float, e: TerminalError) -> None:
        self.queue.forget(key)
        with self._lock:
            self._failures.pop(key, None)
            self._flagged.discard(key)
        self.metrics.observe(time.perf_counter() - start, terminal=1)
        logger.error("key=%s result=terminal reason=%s error=%s duration=%.1fms (not retried)",
                     key, e.reason, e, self._ms(start))
        conditions.write_condition(ctx, key, status="True", reason=e.reason, message=str(e))

    def _failed(self, ctx: ReconcileContext, key: str, start: float, e: Exception) -> None:
        with self._lock:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
        self.queue.add_rate_limited(key)
        self.metrics.observe(time.perf_counter() - start, errors=1)
        line = "key=%s result=error error=%s: %s failures=%d duration=%.1fms"
        args = (key, type(e).__name__, e, failures, self._ms(start))
        if isinstance(e, EcsmDecodeError):
            self._decode_warnings.warn(logger, e.cause, line, *args)
        else:
            logger.warning(line, *args, exc_info=not isinstance(e, EcsmActorsError))
        threshold = self.cfg.controller.failure_threshold
        if threshold > 0 and failures >= threshold and key not in self._flagged:
            message = (f"{failures} consecutive reconcile failures, still retrying: "
                       f"{type(e).__name__}: {e}")
            if conditions.write_condition(ctx, key, status="True",
                                          reason=conditions.REASON_FAILING, message=message):
                with self._lock:
                    self._flagged.add(key)
                self.metrics.count("failure_conditions")
