"""ECSM containers: get by task id, lists by service/node, actions, history (§4, §3.7).

Runs in the caller's thread over a shared RestClient. The action by name sends the
container NAME under the key ``id`` (A-3), exactly as the Go client does.
"""

from __future__ import annotations

from collections.abc import Sequence

from ecsm_actors.ecsm import wire
from ecsm_actors.ecsm.resources.paging import DEFAULT_PAGE_SIZE, list_all
from ecsm_actors.ecsm.rest import RestClient, build_path, query
from ecsm_actors.ecsm.types import (
    ContainerAction,
    ContainerInfo,
    HistoryEntry,
    Page,
    Transaction,
    decode_page,
)
from ecsm_actors.errors import EcsmNotFound


def _action(action: str | ContainerAction) -> str:
    try:
        return ContainerAction(action).value
    except ValueError as e:
        names = ", ".join(a.value for a in ContainerAction)
        raise ValueError(f"unknown container action {action!r} (expected {names})") from e


def _container_id(c: ContainerInfo) -> str:
    return c.id


class ContainerClient:
    def __init__(self, rest: RestClient) -> None:
        self.rest = rest

    def get_by_task_id(self, task_id: str) -> ContainerInfo:
        """GET ``container/{taskId}``; the answer's ``id`` is the container id."""
        data = self.rest.get(build_path("container", ("task id", task_id)))
        return wire.decode_required(ContainerInfo, data)

    def list_by_service(self, service_ids: Sequence[str], page_num: int, page_size: int,
                        key: str | None = None) -> Page[ContainerInfo]:
        """GET ``container/service`` with ``serviceIds[]`` repeated."""
        params = query({"pageNum": page_num, "pageSize": page_size, "key": key},
                       serviceIds=list(service_ids))
        return decode_page(ContainerInfo, self.rest.get(build_path("container/service"),
                                                        params))

    def list_all_by_service(self, service_ids: Sequence[str], key: str | None = None,
                            page_size: int = DEFAULT_PAGE_SIZE) -> list[ContainerInfo]:
        return list_all(lambda n, s: self.list_by_service(service_ids, n, s, key), page_size,
                        key=_container_id)

    def list_by_node(self, node_ids: Sequence[str], page_num: int, page_size: int,
                     key: str | None = None) -> Page[ContainerInfo]:
        """GET ``container/node`` with ``nodeIds[]`` repeated."""
        params = query({"pageNum": page_num, "pageSize": page_size, "key": key},
                       nodeIds=list(node_ids))
        return decode_page(ContainerInfo, self.rest.get(build_path("container/node"), params))

    def list_all_by_node(self, node_ids: Sequence[str], key: str | None = None,
                         page_size: int = DEFAULT_PAGE_SIZE) -> list[ContainerInfo]:
        return list_all(lambda n, s: self.list_by_node(node_ids, n, s, key), page_size,
                        key=_container_id)

    def get_by_name(self, container_name: str, service_ids: Sequence[str]) -> ContainerInfo:
        """The container with exactly this name among the services' containers (a helper,
        no endpoint of its own); raises EcsmNotFound."""
        if service_ids:
            for c in self.list_all_by_service(service_ids):
                if c.name == container_name:
                    return c
        raise EcsmNotFound(404, f"container with name '{container_name}' not found")

    def action_by_name(self, container_name: str, action: str | ContainerAction) -> Transaction:
        """PUT ``container`` ``{"id": <name>, "action": ...}``."""
        body = {"id": container_name, "action": _action(action)}
        return wire.decode(Transaction, self.rest.put(build_path("container"), body))

    def action_by_service(self, service_id: str, action: str | ContainerAction) -> Transaction:
        """PUT ``service/container`` ``{"serviceId", "action"}``: every instance."""
        body = {"serviceId": service_id, "action": _action(action)}
        return wire.decode(Transaction, self.rest.put(build_path("service/container"), body))

    def history(self, task_id: str, page_num: int = 1,
                page_size: int = DEFAULT_PAGE_SIZE) -> Page[HistoryEntry]:
        """GET ``container/action/history?id=<taskId>``."""
        params = [("id", task_id), ("pageNum", str(page_num)), ("pageSize", str(page_size))]
        return decode_page(HistoryEntry, self.rest.get(build_path("container/action/history"),
                                                       params))
