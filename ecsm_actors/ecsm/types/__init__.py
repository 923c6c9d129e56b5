"""Typed ECSM answers: frozen dataclasses mirroring the wire names in snake_case.

Pure data shared by the client, the CLI and tests. Each keeps the wire dict in ``.raw``.
"""

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
from ecsm_actors.ecsm.types.nodes import (
    NameCheck,
    NetStat,
    NetValue,
    NodeCpuUsage,
    NodeDeleteConflict,
    NodeDetailsById,
    NodeDetailsByName,
    NodeInfo,
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

__all__ = [
    "ContainerAction", "ContainerInfo", "CpuUsage", "ErrorInstance", "HistoryEntry",
    "ImageDetails", "ImageListEntry", "ImageListItem", "ImageRef", "ImageSpec",
    "ImageStatistics", "NameCheck", "NetStat", "NetValue", "NodeCpuUsage",
    "NodeDeleteConflict", "NodeDetailsById", "NodeDetailsByName", "NodeInfo", "NodeMetrics",
    "NodeSpec", "NodeStatus", "NodeTime", "NodeTypeUpdateInfo", "NodeView",
    "NodeViewContainer", "NodeViewProvision", "Page", "Percent", "ProcessMetrics",
    "RepositoryInfo", "ServeRef", "ServiceDetail", "ServiceNodeInfo", "ServiceRow",
    "SizedPercent", "Transaction", "decode_page", "parse_ref",
]
