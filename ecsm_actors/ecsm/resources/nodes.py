"""ECSM nodes: register, checks, update, types, list, details, status, delete, view,
metrics (ecsm-api.md §5).

Runs in the caller's thread over a shared RestClient. Node delete and the checks decode
their ``data`` themselves (a string, an array or a bool; §5.2, §5.11).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ecsm_actors.ecsm import wire
from ecsm_actors.ecsm.resources.paging import DEFAULT_PAGE_SIZE, list_all
from ecsm_actors.ecsm.rest import RestClient, build_path, query
from ecsm_actors.ecsm.types.common import Page, decode_page
from ecsm_actors.ecsm.types.node_info import NodeInfo
from ecsm_actors.errors import EcsmDecodeError

# The other node types are imported by the methods that return them: the service
# controller lists nodes only, and need not create those dataclasses at its start.
if TYPE_CHECKING:
    from ecsm_actors.ecsm.types.nodes import (
        NameCheck,
        NodeCapacity,
        NodeDeleteConflict,
        NodeDetailsById,
        NodeDetailsByName,
        NodeMetrics,
        NodeStatus,
        NodeTypeUpdateInfo,
        NodeView,
    )


def _exists(data: Any) -> bool:
    if data is None:
        return False
    if isinstance(data, bool):
        return data
    raise wire.mismatch("data", "bool", data)


def _node_id(node: NodeInfo) -> str:
    return node.id


class NodeClient:
    def __init__(self, rest: RestClient) -> None:
        self.rest = rest

    def register(self, address: str, name: str, password: str, tls: bool | None = None) -> None:
        """POST ``node``; any ``data`` is accepted."""
        body: dict[str, Any] = {"address": address, "name": name, "password": password}
        if tls is not None:
            body["tls"] = tls
        self.rest.post(build_path("node"), body)

    def validate_name(self, name: str, exclude_id: str | None = None) -> NameCheck:
        """GET ``node/name/check``: ``data`` true means the name exists already."""
        from ecsm_actors.ecsm.types.nodes import NameCheck

        data = self.rest.get(build_path("node/name/check"), query({"name": name,
                                                                    "id": exclude_id}))
        if _exists(data):
            return NameCheck(is_valid=False, message=f"node name '{name}' already exists")
        return NameCheck(is_valid=True, message="")

    def validate_address(self, address: str, exclude_id: str | None = None,
                         tls: bool | None = None) -> NameCheck:
        """GET ``node/address/check``."""
        from ecsm_actors.ecsm.types.nodes import NameCheck

        params = query({"address": address, "id": exclude_id, "tls": tls})
        if _exists(self.rest.get(build_path("node/address/check"), params)):
            return NameCheck(is_valid=False,
                             message=f"node address '{address}' already exists")
        return NameCheck(is_valid=True, message="")

    def update(self, node_id: str, body: dict[str, Any]) -> None:
        """PUT ``node`` (id in the body only, A-5)."""
        if body.get("id") != node_id:
            raise ValueError(f"node id {node_id!r} does not match body id {body.get('id')!r}")
        self.rest.put(build_path("node"), body)

    def refresh_types(self) -> None:
        """PUT ``node/type`` with no body (the headers are still sent)."""
        self.rest.put(build_path("node/type"), send_body=False)

    def check_type_updates(self) -> list[NodeTypeUpdateInfo]:
        from ecsm_actors.ecsm.types.nodes import NodeTypeUpdateInfo

        return wire.decode_list(NodeTypeUpdateInfo, self.rest.get(build_path("node/type/check")))

    def list(self, page_num: int, page_size: int, name: str | None = None,
             basic_info: bool = False) -> Page[NodeInfo]:
        """GET ``node``; ``basicInfo=true`` only when asked, never ``false``."""
        params = query({"pageNum": page_num, "pageSize": page_size, "name": name,
                        "basicInfo": True if basic_info else None})
        return decode_page(NodeInfo, self.rest.get(build_path("node"), params))

    def list_all(self, name: str | None = None, basic_info: bool = False,
                 page_size: int = DEFAULT_PAGE_SIZE) -> builtins.list[NodeInfo]:
        return list_all(lambda n, s: self.list(n, s, name, basic_info), page_size,
                        key=_node_id)

    def get_by_id(self, node_id: str) -> NodeDetailsById:
        from ecsm_actors.ecsm.types.nodes import NodeDetailsById

        return wire.decode_required(NodeDetailsById,
                                    self.rest.get(build_path("node", ("node id", node_id))))

    def get_by_name(self, name: str) -> NodeDetailsByName:
        from ecsm_actors.ecsm.types.nodes import NodeDetailsByName

        return wire.decode_required(NodeDetailsByName,
                                    self.rest.get(build_path("node/name", ("node name", name))))

    def list_status(self, ids: Sequence[str]) -> builtins.list[NodeStatus]:
        """GET ``node/status?ids[]=…``; returns the inner ``nodes`` array."""
        from ecsm_actors.ecsm.types.nodes import NodeStatusList

        data = self.rest.get(build_path("node/status"), query(ids=list(ids)))
        return list(wire.decode_required(NodeStatusList, data).nodes)

    def capacities(self) -> dict[str, NodeCapacity]:
        """Node name → container memory (total, free, allocated) of every node: one
        ``GET node`` listing and one ``GET node/status`` for all their ids."""
        from ecsm_actors.ecsm.types.nodes import node_capacities

        nodes = self.list_all()
        statuses = self.list_status([n.id for n in nodes]) if nodes else []
        return node_capacities(nodes, statuses)

    def delete(self, ids: Sequence[str]) -> builtins.list[NodeDeleteConflict]:
        """DELETE ``node`` ``{"ids": [...]}``: ``"success"`` → no conflicts; an array →
        the nodes refused because services use them; anything else is an error (§5.11)."""
        from ecsm_actors.ecsm.types.nodes import NodeDeleteConflict

        data = self.rest.delete(build_path("node"), {"ids": list(ids)})
        if data == "success":
            return []
        if isinstance(data, list) and data:
            return wire.decode_list(NodeDeleteConflict, data)
        if data is None or data == "" or data == []:
            raise EcsmDecodeError("delete response data is empty or null, which is unexpected")
        raise EcsmDecodeError(f"unexpected data format in delete response: {data!r:.200}")

    def node_view(self, node_id: str) -> NodeView:
        from ecsm_actors.ecsm.types.nodes import NodeView

        path = build_path("overview/platform/node-view", ("node id", node_id))
        return wire.decode_required(NodeView, self.rest.get(path))

    def metrics(self, node_id: str, instant: bool = True) -> builtins.list[NodeMetrics]:
        """GET ``overview/node?instant=…&nodeId=…`` (both always sent)."""
        from ecsm_actors.ecsm.types.nodes import NodeMetrics

        params = [("nodeId", node_id), ("instant", "true" if instant else "false")]
        return wire.decode_list(NodeMetrics, self.rest.get(build_path("overview/node"), params))
