"""Fault injection of the simulator: latency, error rate, dropped connections, partition.

Runs inside the simulator process; applies to ``/api/`` requests only (never to the admin
API under ``/_sim/``). Error kinds:

* ``http5xx``   — HTTP 500 with an error envelope (status 500);
* ``envelope``  — HTTP 200 with an error envelope (status 500): the HTTP code lies (A-1);
* ``malformed`` — HTTP 200 with a truncated JSON body (the client's decode error path).

A dropped request (``drop_rate`` or ``partition``) closes the connection without an answer.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any

from ecsm_actors.ecsm.simulator.errors import bad_request

ERROR_KINDS = ("http5xx", "envelope", "malformed")
MALFORMED_BODY = b'{"status":200,"message":"success","data":{"total":'


@dataclass(frozen=True, kw_only=True)
class Faults:
    latency: float = 0.0
    error_rate: float = 0.0
    error_kind: str = "http5xx"
    drop_rate: float = 0.0
    partition: bool = False

    @classmethod
    def from_body(cls, body: Any) -> Faults:
        doc = body if isinstance(body, dict) else {}
        try:
            faults = cls(latency=float(doc.get("latency", 0.0)),
                         error_rate=float(doc.get("error_rate", 0.0)),
                         error_kind=str(doc.get("error_kind", "http5xx")),
                         drop_rate=float(doc.get("drop_rate", 0.0)),
                         partition=bool(doc.get("partition", False)))
        except (TypeError, ValueError) as e:
            raise bad_request(f"faults: {e}") from e
        if faults.error_kind not in ERROR_KINDS:
            raise bad_request(f"error_kind: expected one of {', '.join(ERROR_KINDS)}")
        for name in ("error_rate", "drop_rate"):
            if not 0.0 <= getattr(faults, name) <= 1.0:
                raise bad_request(f"{name}: expected 0..1")
        if faults.latency < 0:
            raise bad_request("latency: must not be negative")
        return faults

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
