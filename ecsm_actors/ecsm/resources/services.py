"""ECSM services: create, list, get, update, delete (ecsm-api.md §3).

Runs in the caller's thread over a shared :class:`~ecsm_actors.ecsm.rest.RestClient`.
Bodies are plain wire dicts, sent as given; answers are typed. Update checks locally that
the id argument equals ``body["id"]`` (A-5). Lists are one row per service id;
:meth:`ServiceClient.collect` also says whether ECSM's pages agreed (:mod:`.paging`).
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any

from ecsm_actors.ecsm import wire
from ecsm_actors.ecsm.resources.paging import DEFAULT_PAGE_SIZE, Listing, collect
from ecsm_actors.ecsm.rest import RestClient, build_path, query
from ecsm_actors.ecsm.types import Page, ServiceDetail, ServiceRow, decode_page
from ecsm_actors.errors import EcsmDecodeError


def _create_result(data: Any) -> dict[str, Any]:
    """``{id, containers}`` with checked types (zero values when data is null)."""
    obj = wire.decode(_CreateResult, data)
    return {"id": obj.id, "containers": list(obj.containers)}


class ServiceClient:
    def __init__(self, rest: RestClient) -> None:
        self.rest = rest

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``service``; returns ``{"id": str, "containers": [str]}``."""
        return _create_result(self.rest.post(build_path("service"), body))

    def list(self, page_num: int, page_size: int, name: str | None = None,
             image_id: str | None = None, node_id: str | None = None,
             label: str | None = None) -> Page[ServiceRow]:
        """GET ``service``; ``image_id`` is sent as ``id`` (A-4)."""
        params = query({"pageNum": page_num, "pageSize": page_size, "name": name,
                        "id": image_id, "nodeId": node_id, "label": label})
        return decode_page(ServiceRow, self.rest.get(build_path("service"), params))

    def list_all(self, name: str | None = None, image_id: str | None = None,
                 node_id: str | None = None, label: str | None = None,
                 page_size: int = DEFAULT_PAGE_SIZE) -> builtins.list[ServiceRow]:
        """Every matching service, one row per id (see :mod:`.paging`)."""
        return list(self.collect(name, image_id, node_id, label, page_size).items)

    def collect(self, name: str | None = None, image_id: str | None = None,
                node_id: str | None = None, label: str | None = None,
                page_size: int = DEFAULT_PAGE_SIZE) -> Listing[ServiceRow]:
        """Every matching service, one row per id, and whether the pages agreed."""
        return collect(lambda n, s: self.list(n, s, name, image_id, node_id, label),
                       page_size, key=_row_id)

    def get(self, service_id: str) -> ServiceDetail:
        """GET ``service/{id}``; an unknown id raises EcsmNotFound. An answer without the
        service (``data: null``) or about another id is an EcsmDecodeError: callers
        confirm that a listed service exists with this call."""
        data = self.rest.get(build_path("service", ("service id", service_id)))
        detail = wire.decode_required(ServiceDetail, data)
        if detail.id != service_id:
            raise EcsmDecodeError(f"GET service/{service_id} answered with service id "
                                  f"{detail.id[:80]!r}", cause="an answer about another id")
        return detail

    def update(self, service_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT ``service`` (id in the body only); returns ``{"id", "containers"}``."""
        if body.get("id") != service_id:
            raise ValueError(f"service id {service_id!r} does not match body id "
                             f"{body.get('id')!r}")
        return _create_result(self.rest.put(build_path("service"), body))

    def delete(self, service_id: str) -> dict[str, Any]:
        """DELETE ``service/{id}``; returns ``{"transactionId": str}``."""
        data = self.rest.delete(build_path("service", ("service id", service_id)))
        return {"transactionId": wire.decode(_DeleteResult, data).transaction_id}


def _row_id(row: ServiceRow) -> str:
    return row.id


@dataclass(frozen=True, kw_only=True)
class _CreateResult:
    id: str
    containers: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class _DeleteResult:
    transaction_id: str
