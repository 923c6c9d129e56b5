"""The route table of the simulated ECSM API: the 29 method+path pairs of §2.

Runs inside the simulator process. Order matters only among patterns; fixed paths
(``container/service``, ``node/status``, ``node/name/check``, ...) always win over
``{param}`` ones (§2 routing precedence).
"""

from __future__ import annotations

from ecsm_actors.ecsm.simulator import api_platform as p
from ecsm_actors.ecsm.simulator import api_workloads as w
from ecsm_actors.ecsm.simulator.request import Router

ROUTES = (
    ("POST", "service", w.create_service),                                  # 1
    ("GET", "service", w.list_services),                                    # 2
    ("GET", "service/{serviceId}", w.get_service),                          # 3
    ("PUT", "service", w.update_service),                                   # 4
    ("DELETE", "service/{serviceId}", w.delete_service),                    # 5
    ("PUT", "service/container", w.service_action),                         # 6
    ("GET", "container/{taskId}", w.get_container),                         # 7
    ("GET", "container/service", w.containers_by_service),                  # 8
    ("GET", "container/node", w.containers_by_node),                        # 9
    ("PUT", "container", w.container_action),                               # 10
    ("GET", "container/action/history", w.container_history),               # 11
    ("POST", "node", p.register_node),                                      # 12
    ("GET", "node/name/check", p.check_name),                               # 13
    ("GET", "node/address/check", p.check_address),                         # 14
    ("PUT", "node", p.update_node),                                         # 15
    ("PUT", "node/type", p.refresh_types),                                  # 16
    ("GET", "node/type/check", p.type_updates),                             # 17
    ("GET", "node", p.list_nodes),                                          # 18
    ("GET", "node/{nodeId}", p.get_node),                                   # 19
    ("GET", "node/name/{nodeName}", p.get_node_by_name),                    # 20
    ("GET", "node/status", p.node_status),                                  # 21
    ("DELETE", "node", p.delete_nodes),                                     # 22
    ("GET", "overview/platform/node-view/{nodeId}", p.node_view),           # 23
    ("GET", "overview/node", p.node_metrics),                               # 24
    ("GET", "image", p.list_images),                                        # 25
    ("GET", "image/summary", p.image_summary),                              # 26
    ("GET", "image/config", p.image_config),                                # 27
    ("GET", "registry/{registryId}/image/{imageId}", p.image_details),      # 28
    ("GET", "image/count", p.image_count),                                  # 29
)

ROUTER = Router(ROUTES)
