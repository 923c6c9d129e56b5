"""The ECSM Clientset: one entry point to every endpoint of ecsm-api.md §2.

Runs in controllers, ecsm-cli and tests. ``Clientset.from_config(cfg)`` builds the rest
layer from ``cfg.ecsm`` (protocol, host, port, timeouts). The clientset is thread-safe for
concurrent calls (one keep-alive session). It never retries: callers (the workqueue)
decide.

Endpoints by resource::

    services    POST/GET/PUT service, GET/DELETE service/{id}
    containers  GET container/{taskId}, GET container/service|node, PUT container,
                PUT service/container, GET container/action/history
    nodes       POST/PUT/DELETE/GET node, node/name/check, node/address/check,
                PUT node/type, node/type/check, node/{id}, node/name/{name}, node/status,
                overview/platform/node-view/{id}, overview/node
    images      GET image, image/summary, image/config, image/count,
                registry/{rid}/image/{id}
"""

from __future__ import annotations

from ecsm_actors.config import Config, EcsmSettings
from ecsm_actors.ecsm.resources.containers import ContainerClient
from ecsm_actors.ecsm.resources.images import ImageClient
from ecsm_actors.ecsm.resources.nodes import NodeClient
from ecsm_actors.ecsm.resources.services import ServiceClient
from ecsm_actors.ecsm.rest import RestClient, Transport


class Clientset:
    """``.services .containers .nodes .images`` over one :class:`RestClient`."""

    def __init__(self, rest: RestClient) -> None:
        self.rest = rest
        self.services = ServiceClient(rest)
        self.containers = ContainerClient(rest)
        self.nodes = NodeClient(rest)
        self.images = ImageClient(rest)

    @classmethod
    def from_config(cls, cfg: Config, *, transport: Transport | None = None) -> Clientset:
        return cls.from_settings(cfg.ecsm, transport=transport)

    @classmethod
    def from_settings(cls, settings: EcsmSettings, *,
                      transport: Transport | None = None) -> Clientset:
        return cls(RestClient.from_settings(settings, transport=transport))

    @classmethod
    def from_url(cls, base_url: str, *, connect_timeout: float = 3.0,
                 read_timeout: float = 10.0) -> Clientset:
        return cls(RestClient(base_url, connect_timeout=connect_timeout,
                              read_timeout=read_timeout))

    @property
    def base_url(self) -> str:
        return self.rest.base_url

    def close(self) -> None:
        self.rest.close()

    def __enter__(self) -> Clientset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
