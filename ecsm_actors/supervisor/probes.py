"""Active readiness probes: run off the event loop, report back through a wakeup pipe.

Runs in the supervisor process. A probe that needs I/O which may block (a registry PING,
a TCP connect) runs in its own short-lived daemon thread, bound to one child incarnation
(its pid). It retries until it succeeds or is cancelled, then posts a :class:`ProbeResult`
on a queue and writes one byte to a pipe the event loop polls — so the loop never blocks
on a probe and never polls for it. Passive readiness (liveness reports) is handled by the
loop itself.

Invariants: a result names the pid it probed; the loop drops results of an incarnation
that is gone. A cancelled probe posts nothing.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ecsm_actors.errors import EcsmActorsError
from ecsm_actors.supervisor.spec import Readiness, ReadinessKind

logger = logging.getLogger(__name__)

#: Pause between two failed attempts (bounded by the cancel event, never a busy loop): a
#: forked registry serves within milliseconds, each of them counts in a restart.
RETRY_INTERVAL = 0.005
#: Seconds one registry PING may take to be answered (else: not ready, try again).
PING_TIMEOUT = 0.5


@dataclass(frozen=True, kw_only=True)
class ProbeResult:
    name: str
    pid: int
    #: Environment exported to children started afterwards (e.g. the simulator address).
    exports: dict[str, str] = field(default_factory=dict)
    #: Arguments to pin on later restarts of this child (e.g. ``--port N``).
    pin_args: tuple[str, ...] = ()


Check = Callable[[int], ProbeResult | None]


class Prober:
    """Runs probe threads and hands their results to the event loop."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._results: queue.SimpleQueue[ProbeResult] = queue.SimpleQueue()
        self._cancels: dict[str, threading.Event] = {}

    @property
    def fd(self) -> int:
        """Readable when results are waiting: register it in the loop's poller."""
        return self._read_fd

    def needs_thread(self, readiness: Readiness) -> bool:
        return readiness.kind in (ReadinessKind.REGISTRY_PING, ReadinessKind.ADDRESS_FILE,
                                  ReadinessKind.ZYGOTE)

    def start(self, name: str, pid: int, readiness: Readiness,
              check: Check | None = None) -> None:
        """Probe child ``name`` (incarnation ``pid``) until ready or cancelled; ``check``
        replaces the one of ``readiness.kind`` (the zygote's is bound to its socket)."""
        self.cancel(name)
        cancel = threading.Event()
        self._cancels[name] = cancel
        if check is None:
            check = _CHECKS[readiness.kind](name, readiness)
        thread = threading.Thread(target=self._run, args=(check, pid, cancel),
                                  name=f"probe-{name}", daemon=True)
        thread.start()

    def cancel(self, name: str) -> None:
        cancel = self._cancels.pop(name, None)
        if cancel is not None:
            cancel.set()

    def drain(self) -> list[ProbeResult]:
        """Results posted since the last call (call when :attr:`fd` is readable)."""
        try:
            while os.read(self._read_fd, 4096):
                pass
        except BlockingIOError:
            pass
        out = []
        while True:
            try:
                out.append(self._results.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        for name in list(self._cancels):
            self.cancel(name)
        os.close(self._read_fd)
        os.close(self._write_fd)

    def _run(self, check: Check, pid: int, cancel: threading.Event) -> None:
        while not cancel.is_set():
            try:
                result = check(pid)
            except (OSError, ValueError, EcsmActorsError) as e:
                logger.debug("probe of pid %s not ready: %s", pid, e)
                result = None
            if result is not None:
                if not cancel.is_set():
                    self._results.put(result)
                    try:
                        os.write(self._write_fd, b"!")
                    except (BlockingIOError, OSError):
                        pass  # the pipe is full or closed: the loop wakes up anyway
                return
            cancel.wait(RETRY_INTERVAL)


def _registry_ping(name: str, readiness: Readiness) -> Check:
    """One PING on a raw REQ socket (the registry client would bring asyncio, ssl and
    hashlib into the supervisor: 3 MiB for one request). Reconnects every millisecond
    (a connect to a socket file not bound yet), so a registry that binds while a ping
    waits answers it at once. On a stream endpoint (``unix://``, what every local
    process talks to): :func:`_stream_ping`."""
    import zmq

    from ecsm_actors import protocol

    if readiness.endpoint.startswith(protocol.STREAM_SCHEME):
        return _stream_ping(name, readiness)

    def check(pid: int) -> ProbeResult | None:
        sock = zmq.Context.instance().socket(zmq.REQ)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.RECONNECT_IVL, 1)
            sock.connect(readiness.endpoint)
            sock.send(protocol.encode_request(protocol.Op.PING, 1))
            if not sock.poll(int(PING_TIMEOUT * 1000)):
                return None
            reply = protocol.decode_reply(sock.recv())
        except zmq.ZMQError as e:
            raise OSError(f"ping {readiness.endpoint}: {e}") from e
        finally:
            sock.close(linger=0)
        return _answered(name, pid, reply.result)

    return check


def _stream_ping(name: str, readiness: Readiness) -> Check:
    """One PING through the registry's stream endpoint, on the stream client's own socket
    (:class:`~ecsm_actors.registry.stream_socket.StreamRequestSocket`, without the
    registry client): connect, the registry's greeting, the framed PING, its framed
    reply, all within :data:`PING_TIMEOUT`. A listener that does not greet or answer
    (its loop stuck, or the file not bound yet) is not ready."""
    from ecsm_actors import protocol
    from ecsm_actors.registry.stream_socket import StreamRequestSocket

    def check(pid: int) -> ProbeResult | None:
        sock = StreamRequestSocket(readiness.endpoint)
        try:
            attempt = sock.exchange(protocol.encode_request(protocol.Op.PING, 1),
                                    rto=PING_TIMEOUT,
                                    until=time.monotonic() + PING_TIMEOUT)
        finally:
            sock.close()
        if attempt.reply is None:
            return None
        return _answered(name, pid, protocol.decode_reply(attempt.reply).result)

    return check


def _answered(name: str, pid: int, result: object) -> ProbeResult | None:
    """The probe's result for a PING answered with ``result``: ready unless another
    process (not incarnation ``pid``) answered on that endpoint."""
    answered_by = result.get("pid") if isinstance(result, dict) else None
    if answered_by not in (None, pid):
        return None  # someone else answers on that endpoint: not our child yet
    return ProbeResult(name=name, pid=pid)


def _address_file(name: str, readiness: Readiness) -> Check:
    path = Path(readiness.path)

    def check(pid: int) -> ProbeResult | None:
        doc = json.loads(path.read_text())
        if int(doc["pid"]) != pid:
            return None  # a previous incarnation's file: wait for ours
        host, port = str(doc["host"]), int(doc["port"])
        with socket.create_connection((host, port), timeout=0.5):
            pass
        return ProbeResult(
            name=name, pid=pid,
            exports={"ECSM_ACTORS_ECSM_HOST": host, "ECSM_ACTORS_ECSM_PORT": str(port)},
            pin_args=("--port", str(port)),
        )

    def guarded(pid: int) -> ProbeResult | None:
        try:
            return check(pid)
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: {e}") from e

    return guarded


_CHECKS: dict[ReadinessKind, Callable[[str, Readiness], Check]] = {
    ReadinessKind.REGISTRY_PING: _registry_ping,
    ReadinessKind.ADDRESS_FILE: _address_file,
}
