"""The registry's remote endpoints: a ROUTER and a PUB socket on TCP, always with CURVE
(encryption and client authentication), and the ZAP handler that decides who gets in.

Runs in the registry process, in its one serving thread. Owned here:

* **Sockets.** ``registry.remote_endpoint`` (requests) and ``registry.remote_events_endpoint``
  (the same events and heartbeats as the ipc PUB socket) are CURVE servers with the
  registry's key pair (``<run dir>/keys/registry.key_secret``, created at first start),
  in ZAP domain :data:`ZAP_DOMAIN` with the domain enforced: a connection is admitted only
  by our handler, never by its absence. ZMTP heartbeats (``link.heartbeat_interval`` /
  ``heartbeat_timeout``) and TCP keepalive drop dead peers; a peer that does not finish
  its handshake within :data:`HANDSHAKE_IVL` is dropped; message sizes and queues are
  bounded as on ipc.

* **ZAP handler.** A REP socket on ``inproc://zeromq.zap.01``, bound before any CURVE
  socket, serviced by the registry loop's poller — no thread. Why not
  ``zmq.auth.ThreadAuthenticator``: its thread would share the authorized keys with the
  loop (locks, or races on every change), and a flood of handshakes would compete with the
  serving thread for the GIL anyway; here a ZAP request costs one dict lookup, the loop
  takes at most :data:`ZAP_PER_TURN` per turn after serving requests (a flood of bogus
  clients delays their own handshakes, not authenticated requests), and the keys, the
  refusal log and the rebinds have a single owner. A known key is admitted with its name
  as ZAP User-Id; an unknown one is refused (status 400: the handshake fails, the client
  never gets a reply) and logged once per key per :data:`REFUSAL_LOG_PERIOD` — its public
  key and address, never a secret.

* **Roles.** Every remote request's frames carry the User-Id (the key's name); the role
  comes from the authorized-keys file as it is now: ``read`` may PING, GET, LIST,
  WATCH_SINCE and subscribe, anything else is answered ``Forbidden``; a name no longer
  in the file gets no answer at all.

* **Revocation.** The file is checked at each heartbeat and each ZAP request (a ``stat``).
  When a key loses its access (revoked, or its name given another key), both remote
  sockets are closed and bound again: every peer is disconnected and must pass ZAP again,
  so a revoked key's requests and event stream stop at once. ZeroMQ offers no way to
  drop one peer of a PUB socket, and rebinding costs the others one reconnection (their
  client retries the request in flight with the same id; a subscriber replays the events
  it missed from their ``seq``). A role change needs no rebind: roles are read per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import zmq
from zmq.utils import z85

from ecsm_actors.config import Config
from ecsm_actors.curve import apply_server
from ecsm_actors.errors import Internal
from ecsm_actors.protocol import Op
from ecsm_actors.registry.authorized import KeysFile, authorized_keys_path, server_pair

logger = logging.getLogger(__name__)

ZAP_ENDPOINT = "inproc://zeromq.zap.01"
ZAP_DOMAIN = b"ecsm-actors"
#: Ops a ``read`` key may send; anything else is Forbidden.
READ_OPS = frozenset({Op.PING, Op.GET, Op.LIST, Op.WATCH_SINCE, Op.LIST_EVENTS})
#: ZAP requests answered per turn of the loop at most.
ZAP_PER_TURN = 16
#: A refused key is logged at most once per this many seconds.
REFUSAL_LOG_PERIOD = 60.0
#: Refused keys remembered for that; beyond, refusals are only counted (random keys).
MAX_REFUSED_KEYS = 100
#: A connection that has not completed its CURVE handshake after this long is dropped,
#: seconds (a slow link needs two round trips of several seconds at worst).
HANDSHAKE_IVL = 20.0
#: Largest message a subscriber may send to the PUB socket (its subscriptions).
MAX_SUBSCRIPTION_BYTES = 64 << 10
#: How long a rebind waits for the port the closed socket released, seconds.
REBIND_WAIT = 2.0

Clock = Callable[[], float]


class RemoteEndpoints:
    """The remote ROUTER (``router``, None when not configured) and PUB (``pub``), the ZAP
    handler (``zap``) and the authorized keys. ``generation`` changes at each rebind:
    the loop re-registers the sockets in its poller then."""

    def __init__(self, context: zmq.Context[Any], cfg: Config, *, max_msg_size: int,
                 replies_hwm: int, requests_hwm: int, events_hwm: int,
                 stats: dict[str, Any], clock: Clock = time.monotonic) -> None:
        self.context = context
        self.link = cfg.link
        self.max_msg_size = max_msg_size
        self.hwm = (replies_hwm, requests_hwm, events_hwm)
        self.stats = stats
        self.clock = clock
        stats.update(remoteAdmitted=0, remoteRefused=0, remoteForbidden=0,
                     remoteDropped=0, remoteRebinds=0)
        self.keys = KeysFile(authorized_keys_path(cfg.run_dir))
        self.pair = server_pair(cfg.run_dir)
        self._refused: dict[bytes, float] = {}
        self._unlogged = 0
        # Bound before any CURVE socket, so that no handshake ever finds no handler.
        self.zap: zmq.Socket[Any] = context.socket(zmq.REP)
        self.zap.setsockopt(zmq.LINGER, 0)
        try:
            self.zap.bind(ZAP_ENDPOINT)
        except zmq.ZMQError as e:
            raise Internal(f"cannot bind the ZAP handler {ZAP_ENDPOINT}: {e}") from e
        self.endpoints = (cfg.registry.remote_endpoint, cfg.registry.remote_events_endpoint)
        self.router: zmq.Socket[Any] | None = None
        self.pub: zmq.Socket[Any] | None = None
        self.generation = 0
        self._reload()
        self._bind(wait=0.0)
        logger.info("remote endpoints %s with CURVE, server key %s; %d authorized key(s)",
                    " and ".join(e for e in self.endpoints if e), self.public_key,
                    len(self.keys.current.entries))

    @property
    def public_key(self) -> str:
        return self.pair.public.decode("ascii")

    # -- sockets -------------------------------------------------------------------------

    def _socket(self, kind: int, endpoint: str, wait: float) -> zmq.Socket[Any]:
        sock = self.context.socket(kind)
        interval, timeout = self.link.heartbeat_interval, self.link.heartbeat_timeout
        options = [
            (zmq.LINGER, 0),
            (zmq.ZAP_DOMAIN, ZAP_DOMAIN),
            (zmq.HANDSHAKE_IVL, int(HANDSHAKE_IVL * 1000)),
            (zmq.HEARTBEAT_IVL, int(interval * 1000)),
            (zmq.HEARTBEAT_TIMEOUT, int(timeout * 1000)),
            (zmq.HEARTBEAT_TTL, int(timeout * 1000)),
            (zmq.TCP_KEEPALIVE, 1),
            (zmq.TCP_KEEPALIVE_IDLE, max(1, int(timeout))),
            (zmq.TCP_KEEPALIVE_INTVL, max(1, int(interval))),
            (zmq.TCP_KEEPALIVE_CNT, 3),
        ]
        replies, requests, events = self.hwm
        if kind == zmq.ROUTER:
            options += [(zmq.MAXMSGSIZE, self.max_msg_size), (zmq.ROUTER_MANDATORY, 1),
                        (zmq.SNDHWM, replies), (zmq.RCVHWM, requests)]
        else:
            options += [(zmq.MAXMSGSIZE, MAX_SUBSCRIPTION_BYTES), (zmq.SNDHWM, events)]
        try:
            for option, value in options:
                sock.setsockopt(option, value)
            # Refuse every handshake ZAP did not admit (libzmq would admit all when no
            # handler is bound); an older libzmq lacks the option: ours is bound first.
            try:
                sock.setsockopt(zmq.ZAP_ENFORCE_DOMAIN, 1)
            except (zmq.ZMQError, AttributeError):
                pass
            apply_server(sock, self.pair)
            deadline = self.clock() + wait
            while True:
                try:
                    sock.bind(endpoint)
                    return sock
                except zmq.ZMQError as e:
                    # After a close the port is released by ZeroMQ's I/O thread, soon.
                    if e.errno != zmq.EADDRINUSE or self.clock() >= deadline:
                        raise Internal(f"cannot bind {endpoint}: {e}") from e
                    time.sleep(0.01)
        except BaseException:
            sock.close(linger=0)
            raise

    def _bind(self, wait: float) -> None:
        requests, events = self.endpoints
        if requests and self.router is None:
            self.router = self._socket(zmq.ROUTER, requests, wait)
            # Rebinds keep the port even when it was chosen by the system (``:*``).
            self.endpoints = (self.router.getsockopt_string(zmq.LAST_ENDPOINT), events)
        if events and self.pub is None:
            self.pub = self._socket(zmq.PUB, events, wait)
            self.endpoints = (self.endpoints[0], self.pub.getsockopt_string(zmq.LAST_ENDPOINT))
        self.generation += 1

    def rebind(self) -> None:
        """Close both remote sockets (dropping every peer and what is queued for it)
        and bind them again: every client must pass ZAP again."""
        for sock in (self.router, self.pub):
            if sock is not None:
                sock.close(linger=0)
        self.router = self.pub = None
        self.stats["remoteRebinds"] += 1
        try:
            self._bind(wait=REBIND_WAIT)
        except Internal as e:  # tried again at the next heartbeat (check_keys)
            logger.error("remote endpoint not bound again: %s", e)
            self.generation += 1

    def close(self) -> None:
        for sock in (self.router, self.pub):
            if sock is not None:
                sock.close(linger=0)
        self.zap.close(linger=0)  # last: a CURVE socket never outlives its handler

    # -- authorized keys -----------------------------------------------------------------

    def check_keys(self) -> None:
        """Re-read the authorized keys if the file changed; rebind when a key lost its
        access. Also binds again a socket a failed rebind left unbound, and counts the
        refusals that were not logged one by one."""
        if self._reload():
            self.rebind()
        elif (self.endpoints[0] and self.router is None) or (self.endpoints[1]
                                                              and self.pub is None):
            self.rebind()
        if self._unlogged:
            logger.warning("%d more connection(s) refused with unknown keys (too many "
                           "keys to log one by one)", self._unlogged)
            self._unlogged = 0

    def _reload(self) -> bool:
        """Whether the file changed so that a key lost its access."""
        before = self.keys.refresh()
        if before is None:
            return False
        current = self.keys.current
        warning = current.warning(self.keys.path)
        if warning:
            logger.warning("%s", warning)
        logger.info("authorized keys: %s", ", ".join(
            f"{e.name} ({e.role})" for e in current.entries) or "none")
        lost = current.removed_from(before)
        if lost:
            logger.info("access withdrawn from %s: every remote connection is dropped and "
                        "authenticated again", ", ".join(e.name for e in lost))
        return bool(lost)

    # -- ZAP -----------------------------------------------------------------------------

    def serve_zap(self) -> None:
        """Answer the ZAP requests queued (at most :data:`ZAP_PER_TURN`)."""
        for _ in range(ZAP_PER_TURN):
            try:
                request = self.zap.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.check_keys()
            try:
                self.zap.send_multipart(self._decide(request), zmq.NOBLOCK)
            except zmq.ZMQError as e:  # libzmq is the only peer: cannot happen, do not die
                logger.error("ZAP reply not sent: %s", e)

    def _decide(self, request: list[bytes]) -> list[bytes]:
        if len(request) < 6:  # no request id to answer with: a malformed ZAP request
            return [b"1.0", b"", b"500", b"malformed ZAP request", b"", b""]
        version, request_id, domain, address, _identity, mechanism = request[:6]
        credentials = request[6:]

        def answer(code: bytes, text: bytes, user: bytes = b"") -> list[bytes]:
            return [b"1.0", request_id, code, text, user, b""]
        if version != b"1.0" or domain != ZAP_DOMAIN or mechanism != b"CURVE":
            self.stats["remoteRefused"] += 1
            return answer(b"400", b"CURVE only")
        if len(credentials) != 1 or len(credentials[0]) != 32:
            self.stats["remoteRefused"] += 1
            return answer(b"400", b"bad credentials")
        key = z85.encode(credentials[0])
        entry = self.keys.current.by_key.get(key.decode("ascii"))
        if entry is None:
            self.stats["remoteRefused"] += 1
            self._log_refusal(key, address)
            return answer(b"400", b"unknown key")
        self.stats["remoteAdmitted"] += 1
        return answer(b"200", b"OK", entry.name.encode())

    def _log_refusal(self, key: bytes, address: bytes) -> None:
        now = self.clock()
        last = self._refused.get(key)
        if last is not None and now - last < REFUSAL_LOG_PERIOD:
            return
        if last is None and len(self._refused) >= MAX_REFUSED_KEYS:
            self._refused = {k: t for k, t in self._refused.items()
                             if now - t < REFUSAL_LOG_PERIOD}
            if len(self._refused) >= MAX_REFUSED_KEYS:
                self._unlogged += 1  # reported at the next heartbeat
                return
        self._refused[key] = now
        logger.warning("refused a connection from %s: CURVE key %s is not authorized "
                       "(logged once a minute per key; ecsm-operator keys authorize NAME "
                       "KEY to admit it)", address.decode("ascii", "replace"),
                       key.decode("ascii"))
