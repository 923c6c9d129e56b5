"""The simulator application: one request in, one reply (or a dropped connection) out.

Runs inside the simulator process, called from the HTTP handler threads; independent of
HTTP so tests can drive it in-process. ``/api/v1/...`` goes through the faults and the
ECSM routes (handlers run under ``State.lock``); ``/_sim/...`` is the admin API and is
never subject to faults. Every answer is an envelope ``{status, message, data,
fieldErrors}``; the HTTP code equals the envelope status (the client ignores it, §1.7).
:meth:`Simulator._dispatch` holds the process's one catch-all: an unexpected exception in
a handler is logged and answered with status 500.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from ecsm_actors.ecsm.simulator.admin_routes import ADMIN_ROUTER
from ecsm_actors.ecsm.simulator.errors import SimError
from ecsm_actors.ecsm.simulator.faults import MALFORMED_BODY, Faults
from ecsm_actors.ecsm.simulator.request import Request
from ecsm_actors.ecsm.simulator.routes import ROUTER
from ecsm_actors.ecsm.simulator.state import State

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
ADMIN_PREFIX = "/_sim"
Reply = tuple[int, bytes]


def envelope(status: int, message: str, data: Any = None,
             field_errors: str | None = None) -> bytes:
    return json.dumps({"status": status, "message": message, "data": data,
                       "fieldErrors": field_errors},
                      ensure_ascii=False, separators=(",", ":")).encode()


_OK = envelope(200, "success")


class Simulator:
    def __init__(self, state: State, *, rng: random.Random | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.state = state
        self.faults = Faults()
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.requests = 0
        self.dropped = 0
        self.errors_injected = 0

    def handle(self, method: str, target: str, body: bytes) -> Reply | None:
        """Answer one request; None means: close the connection without an answer."""
        self.requests += 1
        path, _, qs = target.partition("?")
        if path.startswith(ADMIN_PREFIX + "/"):
            return self._dispatch(ADMIN_ROUTER, method, path, qs, body, prefix=2, admin=True)
        if path != API_PREFIX and not path.startswith(API_PREFIX + "/"):
            return 404, envelope(404, "Not Found", None, f"no route for {method} {path}")
        faults = self.faults
        if faults.active:
            if faults.latency:
                self.sleep(faults.latency)
            decision = faults.decide(self.rng)
            if decision == "drop":
                self.dropped += 1
                return None
            if decision == "error":
                self.errors_injected += 1
                return self._injected_error(faults.error_kind)
        return self._dispatch(ROUTER, method, path, qs, body, prefix=3, admin=False)

    def _dispatch(self, router: Any, method: str, path: str, qs: str, body: bytes,
                  prefix: int, admin: bool) -> Reply:
        try:
            parsed = json.loads(body) if body.strip() else None
        except (ValueError, UnicodeDecodeError):
            return 400, envelope(400, "Bad Request", None, "body: invalid JSON")
        try:
            req = Request.parse(method, path, qs, parsed, prefix)
            handler, params = router.match(method, req.parts)
            with self.state.lock:
                if admin:
                    data = handler(self, req, *params)
                else:
                    data = handler(self.state, req, self.state.clock(), *params)
        except SimError as e:
            return e.status, envelope(e.status, e.message, None, e.field_errors)
        except Exception:  # the simulator's one catch-all: a bug answers 500, never kills it
            logger.exception("%s %s failed", method, path)
            return 500, envelope(500, "Internal Server Error", None, "simulator bug")
        if data is None:
            return 200, _OK
        return 200, envelope(200, "success", data)

    def _injected_error(self, kind: str) -> Reply:
        if kind == "malformed":
            return 200, MALFORMED_BODY
        body = envelope(500, "Internal Server Error", None, "injected fault")
        return (500 if kind == "http5xx" else 200), body

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "dropped": self.dropped,
                "errors_injected": self.errors_injected,
                "services": len(self.state.services),
                "containers": len(self.state.containers)}
