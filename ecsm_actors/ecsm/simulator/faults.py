"""Fault injection of the simulator: latency, error rate, dropped connections, partition.

Runs inside the simulator process; applies to ``/api/`` requests only (never to the admin
API under ``/_sim/``). Error kinds:

* ``http5xx``   — HTTP 500 with an error envelope (status 500);
* ``envelope``  — HTTP 200 with an error envelope (status 500): the HTTP code lies (A-1);
* ``malformed`` — HTTP 200 with a truncated JSON body (the client's decode error path).

A dropped request (``drop_rate`` or ``partition``) closes the connection without an answer.
Every setting is checked when set (finite, within bounds: latency at most 60 s, rates
0..1), so applying one to a request never fails.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from ecsm_actors.ecsm.simulator import admin_values
from ecsm_actors.ecsm.simulator.errors import bad_request
from ecsm_actors.errors import describe_input

ERROR_KINDS = ("http5xx", "envelope", "malformed")
MALFORMED_BODY = b'{"status":200,"message":"success","data":{"total":'
FIELDS = ("latency", "error_rate", "error_kind", "drop_rate", "partition")


@dataclass(frozen=True, kw_only=True)
class Faults:
    latency: float = 0.0
    error_rate: float = 0.0
    error_kind: str = "http5xx"
    drop_rate: float = 0.0
    partition: bool = False

    @classmethod
    def from_body(cls, body: Any) -> Faults:
        """The faults a ``POST /_sim/faults`` body asks for (absent keys: no fault).
        Raises the simulator's 400 on a bad value (see :mod:`.admin_values`)."""
        doc = admin_values.object_body(body, "faults", FIELDS)
        kind = doc.get("error_kind", "http5xx")
        if kind not in ERROR_KINDS:
            raise bad_request(f"error_kind: expected one of {', '.join(ERROR_KINDS)}, "
                              f"got {describe_input(kind)}")
        return cls(latency=_rate(doc, "latency", admin_values.MAX_LATENCY),
                   error_rate=_rate(doc, "error_rate", 1.0), error_kind=kind,
                   drop_rate=_rate(doc, "drop_rate", 1.0),
                   partition=admin_values.flag(doc, "partition", False))

    @property
    def active(self) -> bool:
        return bool(self.latency or self.error_rate or self.drop_rate or self.partition)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def decide(self, rng: random.Random) -> str | None:
        """``"drop"``, ``"error"`` or None for one request."""
        if self.partition or (self.drop_rate and rng.random() < self.drop_rate):
            return "drop"
        if self.error_rate and rng.random() < self.error_rate:
            return "error"
        return None


def _rate(doc: dict[str, Any], key: str, high: float) -> float:
    return admin_values.number(doc, key, 0.0, high, default=0.0) or 0.0
