"""Liveness reports from a child process to the supervisor (the watchdog's input).

Runs in every supervised process. A PUSH socket connects to the supervisor's heartbeat
endpoint and sends a :class:`~ecsm_actors.protocol.Liveness` report at a fixed period.
Sending never blocks: with no supervisor listening, reports are dropped (NOBLOCK, small
HWM, linger 0), so a process runs the same with or without a supervisor.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from ecsm_actors import lifecycle, protocol

logger = logging.getLogger(__name__)

ReportFn = Callable[[], dict[str, Any]]


class LivenessReporter:
    """Sends ``report()`` (queue depth, oldest in-flight age, last completion, stats)
    every ``interval`` seconds from a daemon thread, and on demand with :meth:`beat`."""

    def __init__(
        self,
        context: zmq.Context[Any],
        endpoint: str,
        name: str,
        interval: float,
        report: ReportFn | None = None,
    ) -> None:
        self.name = name
        self.interval = interval
        self._report = report or (lambda: {})
        self._socket = context.socket(zmq.PUSH)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, 4)
        self._socket.setsockopt(zmq.RECONNECT_IVL, 50)
        self._socket.connect(endpoint)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="liveness", daemon=True)

    def start(self) -> LivenessReporter:
        self._thread.start()
        return self

    def beat(self) -> None:
        fields = self._report()
        report = protocol.Liveness(
            name=self.name,
            pid=os.getpid(),
            ts=time.time(),
            queue_depth=int(fields.get("queue_depth", 0)),
            oldest_inflight_age=float(fields.get("oldest_inflight_age", 0.0)),
            last_completed=float(fields.get("last_completed", 0.0)),
            stats=dict(fields.get("stats", {})),
        )
        with self._lock:
            try:
                self._socket.send(protocol.encode_liveness(report), zmq.NOBLOCK)
            except zmq.Again:
                pass  # nobody listening: the supervisor is absent or restarting
            except zmq.ZMQError as e:
                logger.debug("liveness report not sent: %s", e)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            lifecycle.exit_if_orphaned()  # backstop of the parent-death signal
            self.beat()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 1)
        with self._lock:
            self._socket.close(linger=0)
