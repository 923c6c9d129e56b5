"""The simulator's admin API under ``/_sim/`` (server side of :mod:`.admin`).

Runs inside the simulator process; handlers get the simulator (:class:`Simulated`) and run
under ``State.lock``. Never subject to injected faults. Routes::

    GET    /_sim/health                      {pid, version, requests}
    GET    /_sim/state                       everything, for tests
    POST   /_sim/faults                      {latency, error_rate, error_kind, drop_rate, partition}
    DELETE /_sim/faults                      reset
    POST   /_sim/nodes/{name}/down|up
    POST   /_sim/nodes/{name}/memory         {bytes}: the node's container memory
    POST   /_sim/containers/{name}/crash     {message}
    DELETE /_sim/containers/{name}           deleted behind the operator's back
    POST   /_sim/services/{idOrName}/load    {cpu: percent total, memory: bytes total}
    POST   /_sim/start-delay                 {seconds}

Every value is checked before anything changes (:mod:`.admin_values`): latency 0..60 s,
error_rate and drop_rate 0..1, partition a boolean, cpu 0..1e6 percent, memory (load
and node memory) a whole 0..2**50 bytes, seconds 0..3600, message a string of at most
1,024 characters; NaN, Infinity, strings for numbers and unknown keys answer 400 naming
the key.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from ecsm_actors.ecsm.simulator import actions, admin_values, capacity, views
from ecsm_actors.ecsm.simulator.faults import Faults
from ecsm_actors.ecsm.simulator.request import Request, Router
from ecsm_actors.ecsm.simulator.state import State


class Simulated(Protocol):
    """What an admin handler sees of the simulator (:class:`~.app.Simulator` is one, and
    imports this module: this one never imports it back)."""

    state: State
    faults: Faults
    requests: int

    def stats(self) -> dict[str, Any]: ...


def health(sim: Simulated, req: Request) -> dict[str, Any]:
    # requests: every request answered or dropped so far (this one included); cheap to
    # poll, unlike /state, so a benchmark can count ECSM's load per second.
    return {"pid": os.getpid(), "version": sim.state.version, "requests": sim.requests}


def state(sim: Simulated, req: Request) -> dict[str, Any]:
    st = sim.state
    now = st.clock()
    services = []
    for svc in st.services.values():
        detail = views.service_detail(st, svc, now)
        detail["load"] = {"cpu": svc.load_cpu, "memory": svc.load_memory}
        detail["containers"] = [c.id for c in st.containers_of(svc.id)]
        services.append(detail)
    return {
        "nodes": [views.node_info(st, n, now) | {"memory": capacity.node_figures(st, n)}
                  for n in st.nodes.values()],
        "services": services,
        "containers": views.containers(st, list(st.containers.values()), now),
        "images": [views.image_item(i) for i in st.images.values()],
        "faults": sim.faults.to_dict(), "startDelay": st.start_delay,
        "version": st.version, "stats": sim.stats(),
    }


def set_faults(sim: Simulated, req: Request) -> dict[str, Any]:
    sim.faults = Faults.from_body(req.body)
    return sim.faults.to_dict()


def reset_faults(sim: Simulated, req: Request) -> dict[str, Any]:
    sim.faults = Faults()
    return sim.faults.to_dict()


def node_down(sim: Simulated, req: Request, name: str) -> dict[str, Any]:
    node = actions.node_down(sim.state, name)
    return views.node_info(sim.state, node, sim.state.clock())


def node_up(sim: Simulated, req: Request, name: str) -> dict[str, Any]:
    node = actions.node_up(sim.state, name)
    return views.node_info(sim.state, node, sim.state.clock())


def set_node_memory(sim: Simulated, req: Request, name: str) -> dict[str, Any]:
    doc = admin_values.object_body(req.body, "memory", ("bytes",))
    admin_values.number(doc, "bytes", 0, admin_values.MAX_MEMORY, required=True)
    memory = admin_values.integer(doc, "bytes", 0, admin_values.MAX_MEMORY)
    node = actions.set_node_memory(sim.state, name, int(memory or 0))
    return views.node_status(sim.state, node, sim.state.clock())


def crash(sim: Simulated, req: Request, name: str) -> dict[str, Any]:
    doc = admin_values.object_body(req.body, "crash", ("message",))
    message = admin_values.text(doc, "message", "container exited unexpectedly (code 139)")
    c = actions.crash_container(sim.state, name, message)
    return views.container(sim.state, c, sim.state.clock())


def delete_container(sim: Simulated, req: Request, name: str) -> dict[str, Any]:
    c = actions.delete_container(sim.state, name)
    return {"id": c.id, "name": c.name}


def set_load(sim: Simulated, req: Request, service: str) -> None:
    doc = admin_values.object_body(req.body, "load", ("cpu", "memory"))
    cpu = admin_values.number(doc, "cpu", 0.0, admin_values.MAX_CPU)
    memory = admin_values.integer(doc, "memory", 0, admin_values.MAX_MEMORY)
    actions.set_load(sim.state, service, cpu, memory)


def set_start_delay(sim: Simulated, req: Request) -> dict[str, float]:
    doc = admin_values.object_body(req.body, "start-delay", ("seconds",))
    seconds = admin_values.number(doc, "seconds", 0.0, admin_values.MAX_START_DELAY,
                                  required=True)
    sim.state.start_delay = float(seconds or 0.0)
    return {"seconds": sim.state.start_delay}


ADMIN_ROUTER = Router((
    ("GET", "health", health),
    ("GET", "state", state),
    ("POST", "faults", set_faults),
    ("DELETE", "faults", reset_faults),
    ("POST", "nodes/{name}/down", node_down),
    ("POST", "nodes/{name}/up", node_up),
    ("POST", "nodes/{name}/memory", set_node_memory),
    ("POST", "containers/{name}/crash", crash),
    ("DELETE", "containers/{name}", delete_container),
    ("POST", "services/{service}/load", set_load),
    ("POST", "start-delay", set_start_delay),
))
