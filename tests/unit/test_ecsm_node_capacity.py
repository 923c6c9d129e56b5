"""The client's capacity view of ECSM: node memory total/free/allocated, what each ECSM
service holds per node, and a config's memory limit (what a scheduler computes room from)."""

from __future__ import annotations

from typing import Any

import pytest

from ecsm_actors.ecsm import wire
from ecsm_actors.ecsm.types import (
    ContainerInfo,
    NodeInfo,
    NodeStatus,
    memory_held,
    memory_limit_mb,
    node_capacities,
)

MIB = 1 << 20


def node_row(node_id: str, name: str, status: str = "online") -> NodeInfo:
    return wire.decode(NodeInfo, {"id": node_id, "name": name, "status": status})


def node_status(node_id: str, total: int, free: int, status: str = "online") -> NodeStatus:
    return wire.decode(NodeStatus, {"id": node_id, "status": status, "memoryTotal": total,
                                    "memoryFree": free})


def container(service_id: str, node: str, limit: int, deploy: str = "success") -> ContainerInfo:
    return wire.decode(ContainerInfo, {"serviceId": service_id, "nodeName": node,
                                       "memoryLimit": limit, "deployStatus": deploy})


def test_a_node_status_reports_the_memory_allocated_as_total_minus_free() -> None:
    assert node_status("n1", 1024 * MIB, 256 * MIB).memory_allocated == 768 * MIB
    assert node_status("n1", 1024 * MIB, 2048 * MIB).memory_allocated == 0


def test_capacities_are_keyed_by_node_name_and_say_how_many_instances_fit() -> None:
    caps = node_capacities(
        [node_row("id-1", "node-1"), node_row("id-2", "node-2", "offline"),
         node_row("id-3", "node-3")],
        [node_status("id-1", 1024 * MIB, 600 * MIB),
         node_status("id-2", 1024 * MIB, 1024 * MIB, "offline")])
    assert caps["node-1"].memory_allocated == 424 * MIB
    assert caps["node-1"].fits(256 * MIB) == 2
    assert caps["node-1"].online and not caps["node-2"].online
    assert caps["node-3"].memory_total == 0 and caps["node-3"].fits(MIB) == 0


def test_a_reservation_must_be_positive() -> None:
    caps = node_capacities([node_row("id-1", "node-1")], [node_status("id-1", MIB, MIB)])
    with pytest.raises(ValueError):
        caps["node-1"].fits(0)


def test_memory_held_sums_limits_per_service_and_node_and_a_failed_deployment_holds_none(
) -> None:
    held = memory_held([
        container("s1", "node-1", 256 * MIB), container("s1", "node-1", 256 * MIB),
        container("s1", "node-2", 256 * MIB), container("s2", "node-2", 512 * MIB),
        container("s2", "node-3", 512 * MIB, deploy="failed")])
    assert held == {"s1": {"node-1": 512 * MIB, "node-2": 256 * MIB},
                    "s2": {"node-2": 512 * MIB}}


@pytest.mark.parametrize(("config", "expected"), [
    ({"sylixos": {"resources": {"memory": {"memoryLimitMB": 512, "kheapLimit": 1}}}}, 512),
    ({"sylixos": {"resources": {"memory": None}}}, None),
    ({"sylixos": {"resources": {"memory": {"memoryLimitMB": 0}}}}, None),
    ({"sylixos": {"resources": {"memory": {"memoryLimitMB": True}}}}, None),
    ({"platform": {"os": "linux"}}, None),
    (None, None),
])
def test_the_memory_limit_is_read_from_an_image_config(config: Any, expected: int | None
                                                       ) -> None:
    assert memory_limit_mb(config) == expected


def test_the_cli_memory_cell_reads_as_allocated_over_capacity_in_quantities() -> None:
    from ecsm_actors.cli.platform_format import memory_cell

    assert memory_cell(768 * MIB, 1 << 30) == "768Mi/1Gi"
    assert memory_cell(3 * (1 << 29), 4 << 30) == "1.5Gi/4Gi"
    assert memory_cell(0, 0) == "0/0"
    assert memory_cell(None, 1 << 30) == "-"
