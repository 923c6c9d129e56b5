"""Typed ECSM answers: frozen dataclasses mirroring the wire names in snake_case.

Pure data shared by the client, the CLI and tests. Each keeps the wire dict in ``.raw``.
The names are imported on first use (PEP 562): a process creates only the dataclasses of
the modules it touches (each costs about a millisecond at its start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ecsm_actors.lazy import lazy_exports

if TYPE_CHECKING:
    from ecsm_actors.ecsm.types.common import (
        ContainerAction,
        HistoryEntry,
        Page,
        Transaction,
        decode_page,
    )
    from ecsm_actors.ecsm.types.containers import ContainerInfo, CpuUsage
    from ecsm_actors.ecsm.types.images import (
        ImageDetails,
        ImageListItem,
        ImageRef,
        ImageStatistics,
        RepositoryInfo,
        parse_ref,
    )
    from ecsm_actors.ecsm.types.node_info import NodeInfo
    from ecsm_actors.ecsm.types.nodes import (
        NameCheck,
        NetStat,
        NetValue,
        NodeCapacity,
        NodeCpuUsage,
        NodeDeleteConflict,
        NodeDetailsById,
        NodeDetailsByName,
        NodeMetrics,
        NodeStatus,
        NodeTime,
        NodeTypeUpdateInfo,
        NodeView,
        NodeViewContainer,
        NodeViewProvision,
        Percent,
        ProcessMetrics,
        ServeRef,
        SizedPercent,
        memory_held,
        memory_limit_mb,
        node_capacities,
    )
    from ecsm_actors.ecsm.types.services import (
        ErrorInstance,
        ImageListEntry,
        ImageSpec,
        NodeSpec,
        ServiceDetail,
        ServiceNodeInfo,
        ServiceRow,
    )

_EXPORTS = {
    "ContainerAction": "common",
    "HistoryEntry": "common",
    "Page": "common",
    "Transaction": "common",
    "decode_page": "common",
    "ContainerInfo": "containers",
    "CpuUsage": "containers",
    "ImageDetails": "images",
    "ImageListItem": "images",
    "ImageRef": "images",
    "ImageStatistics": "images",
    "RepositoryInfo": "images",
    "parse_ref": "images",
    "NameCheck": "nodes",
    "NetStat": "nodes",
    "NetValue": "nodes",
    "NodeCapacity": "nodes",
    "NodeCpuUsage": "nodes",
    "NodeDeleteConflict": "nodes",
    "NodeDetailsById": "nodes",
    "NodeDetailsByName": "nodes",
    "NodeInfo": "node_info",
    "NodeMetrics": "nodes",
    "NodeStatus": "nodes",
    "NodeTime": "nodes",
    "NodeTypeUpdateInfo": "nodes",
    "NodeView": "nodes",
    "NodeViewContainer": "nodes",
    "NodeViewProvision": "nodes",
    "Percent": "nodes",
    "ProcessMetrics": "nodes",
    "ServeRef": "nodes",
    "SizedPercent": "nodes",
    "memory_held": "nodes",
    "memory_limit_mb": "nodes",
    "node_capacities": "nodes",
    "ErrorInstance": "services",
    "ImageListEntry": "services",
    "ImageSpec": "services",
    "NodeSpec": "services",
    "ServiceDetail": "services",
    "ServiceNodeInfo": "services",
    "ServiceRow": "services",
}


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)


__all__ = [
    "ContainerAction", "ContainerInfo", "CpuUsage", "ErrorInstance", "HistoryEntry",
    "ImageDetails", "ImageListEntry", "ImageListItem", "ImageRef", "ImageSpec",
    "ImageStatistics", "NameCheck", "NetStat", "NetValue", "NodeCapacity", "NodeCpuUsage",
    "NodeDeleteConflict", "NodeDetailsById", "NodeDetailsByName", "NodeInfo", "NodeMetrics",
    "NodeSpec", "NodeStatus", "NodeTime", "NodeTypeUpdateInfo", "NodeView",
    "NodeViewContainer", "NodeViewProvision", "Page", "Percent", "ProcessMetrics",
    "RepositoryInfo", "ServeRef", "ServiceDetail", "ServiceNodeInfo", "ServiceRow",
    "SizedPercent", "Transaction", "decode_page", "memory_held", "memory_limit_mb",
    "node_capacities", "parse_ref",
]
