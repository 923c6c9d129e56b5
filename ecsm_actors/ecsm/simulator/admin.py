"""Python client of the simulator's admin API (``/_sim/``): faults and scenarios.

Runs in tests, benchmarks and demos (any process). Never subject to injected faults.
Errors are the ECSM ones: EcsmUnavailable when the simulator is not reachable,
EcsmApiError/EcsmNotFound for a refused admin call (unknown node, bad value).

    admin = SimulatorAdmin.from_config(cfg)
    admin.faults(latency=0.2, error_rate=0.5, error_kind="envelope")
    admin.node_down("node-2"); admin.crash_container("web-3")
    admin.set_load(service_id, cpu=150.0, memory=600 << 20)
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from ecsm_actors.config import Config
from ecsm_actors.ecsm.rest import RequestsTransport, decode_envelope


class SimulatorAdmin:
    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._transport = RequestsTransport()

    @classmethod
    def from_config(cls, cfg: Config) -> SimulatorAdmin:
        return cls(cfg.ecsm_url)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        payload = None if body is None else json.dumps(body).encode()
        _, content = self._transport.send(method, f"{self.base_url}/_sim/{path}", payload,
                                          (self.timeout, self.timeout))
        return decode_envelope(content)

    def health(self) -> dict[str, Any]:
        return dict(self._call("GET", "health"))

    def state(self) -> dict[str, Any]:
        """Everything: nodes, services (with load and container ids), containers (wire
        views), images, faults, startDelay, version, stats."""
        return dict(self._call("GET", "state"))

    def faults(self, latency: float = 0.0, error_rate: float = 0.0,
               error_kind: str = "http5xx", drop_rate: float = 0.0,
               partition: bool = False) -> dict[str, Any]:
        """Replace every fault setting (unnamed ones return to their defaults).
        ``error_kind``: ``http5xx`` | ``envelope`` | ``malformed``."""
        return dict(self._call("POST", "faults", {
            "latency": latency, "error_rate": error_rate, "error_kind": error_kind,
            "drop_rate": drop_rate, "partition": partition}))

    def reset_faults(self) -> None:
        self._call("DELETE", "faults")

    def node_down(self, name: str) -> dict[str, Any]:
        """The node goes offline; its containers stop. Nothing is re-placed by itself."""
        return dict(self._call("POST", f"nodes/{quote(name, safe='')}/down"))

    def node_up(self, name: str) -> dict[str, Any]:
        """The node comes back; containers stopped by its outage start again."""
        return dict(self._call("POST", f"nodes/{quote(name, safe='')}/up"))

    def set_node_memory(self, name: str, memory: int) -> dict[str, Any]:
        """The node's container memory becomes ``memory`` bytes; answers its
        ``node/status`` view. Running containers stay; refused ones wait to be asked."""
        return dict(self._call("POST", f"nodes/{quote(name, safe='')}/memory",
                               {"bytes": memory}))

    def crash_container(self, name: str, message: str | None = None) -> dict[str, Any]:
        """The container exits (status ``exited``, ``failedMessage`` set)."""
        body = {"message": message} if message else {}
        return dict(self._call("POST", f"containers/{quote(name, safe='')}/crash", body))

    def delete_container(self, name: str) -> None:
        """The container disappears behind the operator's back."""
        self._call("DELETE", f"containers/{quote(name, safe='')}")

    def set_load(self, service_id: str, cpu: float | None = None,
                 memory: int | None = None) -> None:
        """Total CPU percent / memory bytes of a service (by id or name), shared by its
        running instances."""
        body: dict[str, Any] = {}
        if cpu is not None:
            body["cpu"] = cpu
        if memory is not None:
            body["memory"] = memory
        self._call("POST", f"services/{quote(service_id, safe='')}/load", body)

    def set_start_delay(self, seconds: float) -> None:
        self._call("POST", "start-delay", {"seconds": seconds})

    def close(self) -> None:
        self._transport.close()
