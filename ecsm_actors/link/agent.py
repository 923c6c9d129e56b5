"""``python -m ecsm_actors link-agent``: one context's link to a remote registry.

Runs as a detached background process (its own session, stdio to ``agent.log``), started
by ``ecsm-cli`` (:mod:`.control`). It holds the only key it is given (the context's
client key) and two CURVE connections to the device:

* requests: a local ``ROUTER`` (``registry.sock``) ↔ a remote ``DEALER``. The DEALER
  adds nothing: each request travels with its client's routing frames, which the
  registry's ROUTER keeps in the envelope and sends back with the reply, so the reply
  finds its client here. The DEALER has ``ZMQ_IMMEDIATE``: a request is never queued
  while the link is down; the client gets at once an ``Unavailable`` reply "link to …
  is down (why); request not sent" carrying its request id, and knows it may retry. Only
  before the first connection (the agent was just started for this very request) is a
  request held, until the handshake completes or fails, at most ``heartbeat_timeout``.
* events: a local ``XPUB`` (``events.sock``) ↔ a remote ``XSUB``; subscriptions go
  upstream (ZeroMQ sends them again after a reconnect), events come down.

Both remote sockets send ZMTP heartbeats (``link.heartbeat_interval``) and drop a
connection silent for ``link.heartbeat_timeout``; ZeroMQ reconnects by itself. Socket
monitors keep the state (connected, since when, last error) that ``control.sock``
reports with the requests forwarded, the last round trip, uptime and idle time. The
agent exits after ``link.idle_timeout`` without a request or a subscriber, on ``stop``
(``ecsm-cli link down``) and on SIGTERM; ``agent.lock`` keeps a second agent of the
same directory from starting.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from ecsm_actors import lifecycle, logs, protocol
from ecsm_actors.config import LogSettings
from ecsm_actors.curve import ClientKeys
from ecsm_actors.errors import EcsmActorsError, Unavailable
from ecsm_actors.files import replace_atomically
from ecsm_actors.link.settings import AgentFiles, AgentSettings

logger = logging.getLogger(__name__)

#: Messages one turn takes from one socket at most (the others get their turn).
_TURN = 1000
#: Largest message read from a local peer (the registry refuses larger ones anyway).
_MAX_MSGSIZE = 64 << 20
_HWM = 100_000
_INFLIGHT_AGE = 600.0
_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
           zmq.EVENT_HANDSHAKE_FAILED_AUTH)


@dataclass
class Remote:
    """What the monitor of one remote socket has told."""

    endpoint: str
    connected: bool = False
    since: float = 0.0
    ever_connected: bool = False
    failed_before_up: bool = False
    last_error: str = ""
    connects: int = 0

    def report(self, now: float) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "connected": self.connected,
                "for": round(now - self.since, 3), "connects": self.connects,
                "lastError": self.last_error}


class LinkAgent:
    """The sockets and the loop of one agent (see module docstring)."""

    def __init__(self, settings: AgentSettings, files: AgentFiles, keys: ClientKeys, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.files = files
        self._clock = clock
        now = clock()
        self.started = now
        self.last_activity = now
        self.forwarded = 0
        self.refused = 0
        self.replies = 0
        self.last_rtt: float | None = None
        self.subscribers = 0
        self._inflight: dict[bytes, float] = {}
        self._pending: deque[tuple[float, list[bytes]]] = deque()
        self._stopping = False
        self._ctx: zmq.Context[Any] = zmq.Context()
        self._sockets: list[zmq.Socket[Any]] = []
        self._bound: list[Path] = []
        try:
            self.router = self._bind(zmq.ROUTER, files.registry_sock)
            self.control = self._bind(zmq.REP, files.control_sock)
            self.requests = Remote(settings.endpoint, since=now)
            self.dealer, self.dealer_mon = self._remote(zmq.DEALER, settings.endpoint, keys)
            self.events: Remote | None = None
            self.xpub = self.xpub_mon = self.xsub = self.xsub_mon = None
            if settings.events:
                self.xpub = self._bind(zmq.XPUB, files.events_sock)
                self.xpub_mon = self._own(self.xpub.get_monitor_socket(
                    zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED))
                self.events = Remote(settings.events, since=now)
                self.xsub, self.xsub_mon = self._remote(zmq.XSUB, settings.events, keys)
        except zmq.ZMQError as e:
            self.close()
            raise Unavailable(f"link agent cannot open its sockets: {e}") from e

    # -- sockets -------------------------------------------------------------------------

    def _own(self, sock: zmq.Socket[Any]) -> zmq.Socket[Any]:
        sock.setsockopt(zmq.LINGER, 0)
        self._sockets.append(sock)
        return sock

    def _bind(self, kind: int, path: Path) -> zmq.Socket[Any]:
        """Bind ``ipc://path``, 0600 from the start (umask), replacing a stale file: the
        lock is ours, so nobody else serves it."""
        sock = self._own(self._ctx.socket(kind))
        sock.setsockopt(zmq.MAXMSGSIZE, _MAX_MSGSIZE)
        if kind == zmq.XPUB:
            sock.setsockopt(zmq.SNDHWM, _HWM)
        path.unlink(missing_ok=True)
        umask = os.umask(0o177)
        try:
            sock.bind(AgentFiles.ipc(path))
        finally:
            os.umask(umask)
        self._bound.append(path)
        return sock

    def _remote(self, kind: int, endpoint: str,
                keys: ClientKeys) -> tuple[zmq.Socket[Any], zmq.Socket[Any]]:
        s = self.settings
        sock = self._own(self._ctx.socket(kind))
        if kind == zmq.DEALER:
            sock.setsockopt(zmq.IMMEDIATE, 1)
        else:
            sock.setsockopt(zmq.RCVHWM, _HWM)
        sock.setsockopt(zmq.HEARTBEAT_IVL, max(1, int(s.heartbeat_interval * 1000)))
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, max(1, int(s.heartbeat_timeout * 1000)))
        sock.setsockopt(zmq.HEARTBEAT_TTL, min(6_553_000, max(100, int(
            s.heartbeat_timeout * 1000))))
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
        keys.apply(sock)
        monitor = self._own(sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
            | zmq.EVENT_CONNECT_RETRIED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH))
        sock.connect(endpoint)
        return sock, monitor

    def close(self) -> None:
        """Close every socket and remove the socket files (ZeroMQ leaves them)."""
        for sock in reversed(self._sockets):
            sock.close(linger=0)
        self._sockets.clear()
        self._ctx.term()
        for path in self._bound:
            path.unlink(missing_ok=True)
        self._bound.clear()

    # -- the loop ------------------------------------------------------------------------

    def serve(self, stop: lifecycle.StopFlag) -> None:
        poller = zmq.Poller()
        handlers: dict[zmq.Socket[Any], Callable[[], None]] = {
            self.router: self._from_clients, self.dealer: self._from_registry,
            self.dealer_mon: lambda: self._watch(self.dealer_mon, self.requests),
            self.control: self._control,
        }
        if self.xpub is not None and self.xsub is not None and self.events is not None:
            events, xsub_mon = self.events, self.xsub_mon
            handlers[self.xpub] = self._subscriptions
            handlers[self.xsub] = self._events
            handlers[self.xpub_mon] = self._count_subscribers  # type: ignore[index]
            handlers[xsub_mon] = lambda: self._watch(xsub_mon, events)  # type: ignore
        for sock in handlers:
            poller.register(sock, zmq.POLLIN)
        logger.info("link agent %s serving %s (events: %s) on %s", self.settings.name,
                    self.settings.endpoint, self.settings.events or "none", self.files.dir)
        while not stop.is_set() and not self._stopping:
            ready = poller.poll(100 if self._pending else 500)
            for sock, _ in ready:
                handlers[sock]()
            now = self._clock()
            self._expire_pending(now)
            if self._idle_for(now) >= self.settings.idle_timeout > 0:
                logger.info("idle for %.0f s: exiting", self._idle_for(now))
                return
        logger.info("link agent %s stopping", self.settings.name)

    def _idle_for(self, now: float) -> float:
        if self.subscribers > 0 or self._pending:
            self.last_activity = now
        return now - self.last_activity

    # -- requests ------------------------------------------------------------------------

    def _from_clients(self) -> None:
        for _ in range(_TURN):
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            now = self._clock()
            self.last_activity = now
            if len(frames) < 2:
                continue  # no envelope: nobody to answer
            if self._forward(frames, now):
                continue
            if self._holding(now):
                self._pending.append((now, frames))
            else:
                self._refuse(frames)

    def _forward(self, frames: list[bytes], now: float) -> bool:
        try:
            self.dealer.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            return False
        self.forwarded += 1
        self._inflight[frames[0]] = now
        if len(self._inflight) > 10_000:
            self._inflight = {k: t for k, t in self._inflight.items()
                              if now - t < _INFLIGHT_AGE}
        return True

    def _holding(self, now: float) -> bool:
        """Whether a request that cannot go now waits: only for the first connection."""
        r = self.requests
        return not r.ever_connected and not r.failed_before_up and \
            now - self.started < self.settings.heartbeat_timeout

    def _refuse(self, frames: list[bytes]) -> None:
        self.refused += 1
        why = self.requests.last_error or "not connected yet"
        error = Unavailable(f"link to {self.settings.endpoint} is down ({why}); "
                            f"request not sent")
        reply = protocol.encode_error(protocol.request_id_of(frames[-1]), "", error)
        self.router.send_multipart([*frames[:-1], reply], zmq.NOBLOCK)

    def _flush_pending(self) -> None:
        now = self._clock()
        while self._pending:
            _, frames = self._pending[0]
            if not self._forward(frames, now):
                return
            self._pending.popleft()

    def _expire_pending(self, now: float) -> None:
        if self._pending and self.requests.connected:
            self._flush_pending()
        while self._pending and not self._holding(now):
            self._refuse(self._pending.popleft()[1])

    def _from_registry(self) -> None:
        for _ in range(_TURN):
            try:
                frames = self.dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            sent = self._inflight.pop(frames[0], None)
            if sent is not None:
                self.last_rtt = self._clock() - sent
            self.replies += 1
            self.router.send_multipart(frames, zmq.NOBLOCK)

    # -- events --------------------------------------------------------------------------

    def _subscriptions(self) -> None:
        assert self.xpub is not None and self.xsub is not None
        for _ in range(_TURN):
            try:
                frames = self.xpub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.xsub.send_multipart(frames, zmq.NOBLOCK)

    def _events(self) -> None:
        assert self.xpub is not None and self.xsub is not None
        for _ in range(_TURN):
            try:
                frames = self.xsub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.xpub.send_multipart(frames, zmq.NOBLOCK)

    def _count_subscribers(self) -> None:
        assert self.xpub_mon is not None
        while True:
            try:
                event = recv_monitor_message(self.xpub_mon, zmq.NOBLOCK)["event"]
            except zmq.Again:
                return
            if event == zmq.EVENT_ACCEPTED:
                self.subscribers += 1
            elif event == zmq.EVENT_DISCONNECTED:
                self.subscribers = max(0, self.subscribers - 1)
            self.last_activity = self._clock()

    # -- link state ----------------------------------------------------------------------

    def _watch(self, monitor: zmq.Socket[Any], remote: Remote) -> None:
        while True:
            try:
                msg = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            event, now = msg["event"], self._clock()
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                remote.connected, remote.since, remote.last_error = True, now, ""
                remote.ever_connected = True
                remote.connects += 1
                logger.info("connected to %s", remote.endpoint)
                if remote is self.requests:
                    self._flush_pending()
            elif event == zmq.EVENT_DISCONNECTED:
                if remote.connected:
                    logger.warning("connection to %s lost", remote.endpoint)
                    remote.connected, remote.since = False, now
                    remote.last_error = "connection lost"
                remote.last_error = remote.last_error or "connection lost"
                remote.failed_before_up = not remote.ever_connected
            elif event == zmq.EVENT_CONNECT_RETRIED:
                if not remote.connected and not remote.last_error:
                    remote.last_error = "cannot connect"
                remote.failed_before_up = not remote.ever_connected
            elif event in _FAILED:
                why = "the registry refused this client key (not authorized, or " \
                    "revoked)" if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH \
                    else "CURVE handshake failed (wrong server key?)"
                if why != remote.last_error:  # once per change, not per reconnection
                    logger.warning("%s: %s", remote.endpoint, why)
                remote.last_error = why
                remote.failed_before_up = not remote.ever_connected
            if remote is self.requests and remote.failed_before_up:
                while self._pending:
                    self._refuse(self._pending.popleft()[1])

    # -- control -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        now = self._clock()
        return {
            "name": self.settings.name, "pid": os.getpid(),
            "requests": self.requests.report(now),
            "events": self.events.report(now) if self.events else None,
            "forwarded": self.forwarded, "refused": self.refused, "replies": self.replies,
            "lastRoundTrip": self.last_rtt, "uptime": round(now - self.started, 3),
            "idle": round(self._idle_for(now), 3), "subscribers": self.subscribers,
            "idleTimeout": self.settings.idle_timeout,
        }

    def _control(self) -> None:
        try:
            frame = self.control.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            op = json.loads(frame).get("op")
        except (ValueError, AttributeError):
            op = None
        if op == "status":
            reply: dict[str, Any] = self.status()
        elif op == "stop":
            logger.info("stop requested")
            self._stopping = True
            reply = {"stopping": True, "pid": os.getpid()}
        else:
            reply = {"error": "expected {\"op\": \"status\"|\"stop\"}"}
        self.control.send(json.dumps(reply).encode())


def _lock(path: Path, wait: float) -> int | None:
    """The agent lock's fd, or None when another agent holds it for ``wait`` seconds (a
    CLI never takes it: it only tells the agents of one directory apart)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.02)


def _write_info(files: AgentFiles, settings: AgentSettings) -> None:
    doc = {"pid": os.getpid(), "started": time.time(), "settings": settings.to_doc()}
    replace_atomically(files.info, json.dumps(doc).encode())


def parse_args(argv: list[str]) -> tuple[Path, AgentSettings]:
    parser = argparse.ArgumentParser(prog="python -m ecsm_actors link-agent")
    parser.add_argument("--dir", required=True, help="the agent's directory")
    for name in ("name", "endpoint", "server-key", "client-key"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--events", default="")
    for name in ("idle-timeout", "heartbeat-interval", "heartbeat-timeout"):
        parser.add_argument(f"--{name}", type=float, required=True)
    a = parser.parse_args(argv)
    return Path(a.dir), AgentSettings(
        name=a.name, endpoint=a.endpoint, events=a.events, server_key=a.server_key,
        client_key=a.client_key, idle_timeout=a.idle_timeout,
        heartbeat_interval=a.heartbeat_interval, heartbeat_timeout=a.heartbeat_timeout)


def main(argv: list[str] | None = None) -> int:
    """Process main of ``python -m ecsm_actors link-agent``."""
    try:
        os.setsid()  # out of the starting terminal's session and its signals
    except OSError:
        pass  # already a session leader
    directory, settings = parse_args(list(sys.argv[1:] if argv is None else argv))
    logs.setup(LogSettings(), "link-agent")
    files = AgentFiles(directory)
    lock = _lock(files.lock, wait=1.0)
    if lock is None:
        logger.info("another agent serves %s; exiting", directory)
        return 0
    stop = lifecycle.StopFlag().install()
    try:
        keys = ClientKeys.load(settings.server_key, settings.client_key)
        agent = LinkAgent(settings, files, keys)
    except (EcsmActorsError, OSError) as e:
        logger.error("link agent cannot start: %s", e)
        os.close(lock)
        return 1
    try:
        _write_info(files, settings)
        agent.serve(stop)
    except Exception:  # the one catch-all of this process: log why it ends
        logger.exception("link agent failed")
        return 1
    finally:
        files.info.unlink(missing_ok=True)
        agent.close()
        os.close(lock)
    logger.info("link agent %s stopped", settings.name)
    return 0
