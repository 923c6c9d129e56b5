"""The simulator's answers and the client's types against ecsm-api.md, endpoint by endpoint.

An in-process simulator (no sockets, fake clock) answers all 29 method+path pairs; each
answer must match the schema written from the contract (tests/ecsm_schemas.py), and the
client's dataclasses must name exactly the keys of the same schemas. Drift on either side
fails here.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from typing import Any

import pytest

from ecsm_actors.ecsm import types as t
from ecsm_actors.ecsm import wire
from ecsm_actors.ecsm.simulator.app import Simulator
from ecsm_actors.ecsm.simulator.state import State
from tests import ecsm_schemas as s
from tests.ecsm_sim import in_process_clientset


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def world() -> dict[str, Any]:
    """A simulator with a static and a dynamic service, one stopped container, history."""
    clock = Clock()
    app = Simulator(State.seeded(3, start_delay=1.0, clock=clock))
    cs, _ = in_process_clientset(app)
    config = cs.images.config("app@1.0#sylixos")
    static = cs.services.create({
        "name": "static-a", "image": {"ref": "app@1.0#sylixos", "action": "run",
                                      "config": config, "pullPolicy": "IfNotPresent"},
        "node": {"names": ["node-1", "node-2"]}, "factor": 2, "policy": "static",
        "prepull": False})
    dynamic = cs.services.create({
        "name": "dyn-b", "image": {"ref": "web@1.0", "action": "run", "config": None},
        "node": {"names": None}, "factor": 3, "policy": "dynamic"})
    clock.now += 2
    first = cs.containers.list_all_by_service([static["id"]])[0]
    cs.containers.action_by_name(first.name, "stop")
    nodes = cs.nodes.list_all()
    return {"app": app, "cs": cs, "clock": clock, "static": static["id"],
            "dynamic": dynamic["id"], "container": first, "nodes": nodes}


def call(app: Simulator, method: str, target: str, body: Any = None) -> Any:
    raw = b"" if body is None else json.dumps(body).encode()
    reply = app.handle(method, "/api/v1/" + target, raw)
    assert reply is not None
    doc = json.loads(reply[1])
    assert s.violations(doc, s.ENVELOPE, "envelope") == []
    assert doc["status"] == 200, doc
    return doc["data"]


def conforms(data: Any, schema: Any) -> None:
    problems = s.violations(data, schema)
    assert problems == [], "\n".join(problems)


def test_every_read_endpoint_answers_the_documented_shapes(world: dict[str, Any]) -> None:
    app, c = world["app"], world["container"]
    node = world["nodes"][0]
    image = world["cs"].images.list_all()[0]
    svc = world["static"]
    cases = [
        ("service?pageNum=1&pageSize=10", s.PAGE(s.SERVICE_ROW)),
        (f"service/{svc}", s.SERVICE_DETAIL),
        (f"service/{world['dynamic']}", s.SERVICE_DETAIL),
        (f"container/{c.task_id}", s.CONTAINER_INFO),
        (f"container/service?pageNum=1&pageSize=10&serviceIds%5B%5D={svc}",
         s.PAGE(s.CONTAINER_INFO)),
        (f"container/node?pageNum=1&pageSize=10&nodeIds[]={node.id}", s.PAGE(s.CONTAINER_INFO)),
        (f"container/action/history?id={c.task_id}&pageNum=1&pageSize=10",
         s.PAGE(s.HISTORY_ITEM)),
        ("node/name/check?name=node-1", s.B),
        ("node/address/check?address=10.0.0.9%3A5050", s.B),
        ("node/type/check", [s.TYPE_UPDATE]),
        ("node?pageNum=1&pageSize=10", s.PAGE(s.NODE_INFO)),
        ("node?basicInfo=true&pageNum=1&pageSize=10", s.PAGE(s.NODE_INFO)),
        (f"node/{node.id}", s.NODE_BY_ID),
        ("node/name/node-1", s.NODE_BY_NAME),
        (f"node/status?ids%5B%5D={node.id}", s.NODE_STATUS_LIST),
        (f"overview/platform/node-view/{node.id}", s.NODE_VIEW),
        (f"overview/node?instant=true&nodeId={node.id}", [s.NODE_METRICS]),
        ("image?pageNum=1&pageSize=10&registryId=local", s.PAGE(s.IMAGE_ITEM)),
        ("image/summary", s.IMAGE_SUMMARY),
        ("image/config?ref=app%401.0%23sylixos", s.IMAGE_CONFIG),
        (f"registry/local/image/{image.id}", s.IMAGE_DETAILS),
        ("image/count", [s.REPOSITORY]),
    ]
    for target, schema in cases:
        data = call(app, "GET", target)
        assert data not in (None, [], {}) or schema in (s.B, [s.TYPE_UPDATE]), target
        conforms(data, schema)


def test_every_write_endpoint_answers_the_documented_shapes(world: dict[str, Any]) -> None:
    app = world["app"]
    created = call(app, "POST", "service", {
        "name": "w", "image": {"ref": "db@1.0#sylixos", "action": "load", "config": None},
        "node": {"names": ["node-3"]}, "policy": "static"})
    conforms(created, s.CREATE_RESULT)
    updated = call(app, "PUT", "service", {
        "id": created["id"], "name": "w2", "image": {"ref": "db@1.0#sylixos",
                                                      "action": "load", "config": None},
        "node": {"names": ["node-2", "node-3"]}, "policy": "static"})
    conforms(updated, s.CREATE_RESULT)
    assert len(updated["containers"]) == 2
    conforms(call(app, "PUT", "service/container",
                  {"serviceId": created["id"], "action": "start"}), s.TRANSACTION)
    name = world["container"].name
    conforms(call(app, "PUT", "container", {"id": name, "action": "restart"}), s.TRANSACTION)
    conforms(call(app, "DELETE", f"service/{created['id']}"), s.DELETE_RESULT)
    assert call(app, "POST", "node", {"address": "10.0.0.9:5050", "name": "extra",
                                      "password": "x"}) is None
    extra = app.state.node_named("extra")
    assert extra is not None
    assert call(app, "PUT", "node", {"id": extra.id, "address": "10.0.0.9:5051",
                                     "name": "extra", "password": "y", "tls": True}) is None
    assert call(app, "PUT", "node/type") is None
    used = world["nodes"][0].id
    conforms(call(app, "DELETE", "node", {"ids": [used]}), [s.DELETE_CONFLICT])
    assert call(app, "DELETE", "node", {"ids": [extra.id]}) == "success"


def test_error_answers_are_envelopes_with_a_non_200_status(world: dict[str, Any]) -> None:
    app = world["app"]
    for method, target, body, status in [
        ("GET", "service/nope", None, 404), ("GET", "container/nope", None, 404),
        ("GET", "node/nope", None, 404), ("GET", "node/name/nope", None, 404),
        ("GET", "registry/local/image/nope", None, 404),
        ("GET", "overview/platform/node-view/nope", None, 404),
        ("DELETE", "service/nope", None, 404),
        ("PUT", "container", {"id": "nope", "action": "stop"}, 404),
        ("POST", "service", {"name": "static-a", "image": {"ref": "app@1.0"},
                             "node": {"names": ["node-1"]}}, 400),
        ("POST", "service", {"name": "x", "image": {"ref": "nope@1"},
                             "node": {"names": ["node-1"]}}, 400),
        ("GET", "no/such/route", None, 404),
    ]:
        reply = app.handle(method, "/api/v1/" + target,
                           json.dumps(body).encode() if body else b"")
        assert reply is not None
        doc = json.loads(reply[1])
        assert s.violations(doc, s.ENVELOPE, "envelope") == []
        assert doc["status"] == status and doc["data"] is None, (target, doc)


SCHEMA_TYPES = [
    (s.SERVICE_ROW, t.ServiceRow), (s.SERVICE_DETAIL, t.ServiceDetail),
    (s.CONTAINER_INFO, t.ContainerInfo), (s.HISTORY_ITEM, t.HistoryEntry),
    (s.TRANSACTION, t.Transaction), (s.NODE_INFO, t.NodeInfo),
    (s.NODE_BY_ID, t.NodeDetailsById), (s.NODE_BY_NAME, t.NodeDetailsByName),
    (s.NODE_STATUS, t.NodeStatus), (s.NODE_VIEW, t.NodeView), (s.NODE_METRICS, t.NodeMetrics),
    (s.TYPE_UPDATE, t.NodeTypeUpdateInfo), (s.DELETE_CONFLICT, t.NodeDeleteConflict),
    (s.IMAGE_ITEM, t.ImageListItem), (s.IMAGE_DETAILS, t.ImageDetails),
    (s.IMAGE_SUMMARY, t.ImageStatistics), (s.REPOSITORY, t.RepositoryInfo),
]
#: Keys the Go client ignores and the client may ignore too (§5.12: other static fields).
IGNORED = {"ip", "arch"}


def _wire_fields(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.metadata.get("wire") or wire.camel(f.name): hints[f.name]
            for f in dataclasses.fields(cls) if f.name != "raw"}


def _dataclass_of(hint: Any) -> Any:
    for arg in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(arg):
            return arg
        for inner in typing.get_args(arg):
            if dataclasses.is_dataclass(inner):
                return inner
    return None


def _key_drift(schema: dict[str, Any], cls: type[Any], path: str) -> list[str]:
    fields = _wire_fields(cls)
    keys = {k.rstrip("?") for k in schema}
    out = [f"{path}.{k}: in the contract, not in {cls.__name__}"
           for k in keys - set(fields) - (IGNORED if cls is t.NodeView else set())]
    out += [f"{path}.{k}: in {cls.__name__}, not in the contract" for k in set(fields) - keys]
    for key, hint in fields.items():
        sub = schema.get(key, schema.get(key + "?"))
        while isinstance(sub, (tuple, list)):
            sub = sub[1] if isinstance(sub, tuple) else sub[0]
        nested = _dataclass_of(hint)
        if isinstance(sub, dict) and nested is not None:
            out += _key_drift(sub, nested, f"{path}.{key}")
    return out


@pytest.mark.parametrize(("schema", "cls"), SCHEMA_TYPES, ids=[c.__name__ for _, c in
                                                              SCHEMA_TYPES])
def test_the_client_types_name_exactly_the_contract_keys(schema: dict[str, Any],
                                                          cls: type[Any]) -> None:
    assert _key_drift(schema, cls, cls.__name__) == []


def test_the_client_decodes_every_simulator_answer(world: dict[str, Any]) -> None:
    cs, node, c = world["cs"], world["nodes"][0], world["container"]
    assert [r.name for r in cs.services.list_all()] == ["static-a", "dyn-b"]
    assert cs.services.get(world["static"]).image.pull_policy == "IfNotPresent"
    assert cs.containers.get_by_task_id(c.task_id).id == c.id
    assert [h.cmd for h in cs.containers.history(c.task_id).items] == ["stop"]
    assert cs.nodes.get_by_name("node-1").port == 5050
    assert cs.nodes.get_by_id(node.id).ecsd_version
    assert cs.nodes.list_status([node.id])[0].memory_total > 0
    assert cs.nodes.node_view(node.id).children[0].pro_id in (world["static"], world["dynamic"])
    assert cs.nodes.metrics(node.id)[0].running + cs.nodes.metrics(node.id)[0].stop >= 1
    assert cs.images.details_by_ref("local", "web@1.0").name == "web"
    assert cs.images.summary().local >= 5
    assert cs.images.repositories()[0].registry_name == "本地仓库"
    assert cs.nodes.check_type_updates() == []
