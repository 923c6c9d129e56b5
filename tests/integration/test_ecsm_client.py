"""The ECSM client against a real simulator process over HTTP: every endpoint, paging
across pages, and every error path (unknown id, duplicate name, 5xx, envelope error,
malformed body, timeout, dropped connection, connection refused)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from ecsm_actors.ecsm.clientset import Clientset
from ecsm_actors.errors import EcsmApiError, EcsmDecodeError, EcsmNotFound, EcsmUnavailable
from tests.ecsm_sim import RunningSimulator, running_simulator
from tests.helpers import wait_until


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator("--nodes", "3", "--start-delay", "0.1") as s:
        yield s


@pytest.fixture
def cs(sim: RunningSimulator) -> Iterator[Clientset]:
    client = sim.clientset()
    yield client
    sim.admin.reset_faults()
    client.close()


def body(name: str, *, nodes: list[str] | None = None, factor: int = 1,
         policy: str = "dynamic", ref: str = "app@1.0#sylixos") -> dict[str, Any]:
    return {"name": name, "image": {"ref": ref, "action": "run", "config": None},
            "node": {"names": nodes}, "factor": factor, "policy": policy, "prepull": False}


def test_a_service_goes_through_create_get_update_and_delete(cs: Clientset) -> None:
    created = cs.services.create(body("crud", nodes=["node-1", "node-2"], policy="static"))
    assert len(created["containers"]) == 2
    detail = cs.services.get(created["id"])
    assert (detail.id, detail.name, detail.policy, detail.factor) == \
        (created["id"], "crud", "static", 2)
    assert [n.node_name for n in detail.node_list] == ["node-1", "node-2"]
    update = body("crud-renamed", nodes=["node-3"], policy="static") | {"id": created["id"]}
    updated = cs.services.update(created["id"], update)
    assert len(updated["containers"]) == 1
    assert cs.services.get(created["id"]).name == "crud-renamed"
    assert cs.services.delete(created["id"])["transactionId"]
    with pytest.raises(EcsmNotFound):
        cs.services.get(created["id"])


def test_containers_are_listed_fetched_acted_on_and_recorded(cs: Clientset) -> None:
    sid = cs.services.create(body("acts", factor=2))["id"]
    wait_until(lambda: cs.services.get(sid).instance_online == 2, 5, what="2 online")
    containers = cs.containers.list_all_by_service([sid])
    assert {c.status for c in containers} == {"running"}
    first = containers[0]
    assert cs.containers.get_by_task_id(first.task_id).id == first.id
    assert first.id != first.task_id
    assert cs.containers.get_by_name(first.name, [sid]).task_id == first.task_id
    assert cs.containers.action_by_name(first.name, "stop").status == "success"
    assert [h.cmd for h in cs.containers.history(first.task_id).items] == ["stop"]
    assert cs.services.get(sid).instance_online == 1
    tx = cs.containers.action_by_service(sid, "restart")
    assert tx.id and tx.status == "success"
    assert {c.restart_cnt for c in cs.containers.list_all_by_service([sid])} == {1}
    on_node = cs.containers.list_all_by_node([first.node_id])
    assert first.id in {c.id for c in on_node}
    assert cs.containers.list_by_service(["no-such-service"], 1, 10).total == 0


def test_node_endpoints_answer(cs: Clientset) -> None:
    nodes = cs.nodes.list_all()
    assert [n.name for n in nodes][:3] == ["node-1", "node-2", "node-3"]
    n1 = nodes[0]
    assert cs.nodes.get_by_id(n1.id).password
    by_name = cs.nodes.get_by_name("node-1")
    assert (by_name.id, by_name.ip, by_name.port) == (n1.id, "10.0.0.1", 5050)
    assert [s.id for s in cs.nodes.list_status([n1.id])] == [n1.id]
    assert cs.nodes.node_view(n1.id).name == "node-1"
    assert len(cs.nodes.metrics(n1.id, instant=True)) == 1
    assert not cs.nodes.validate_name("node-1").is_valid
    assert cs.nodes.validate_name("node-1", exclude_id=n1.id).is_valid
    assert not cs.nodes.validate_address("10.0.0.2:5050").is_valid
    cs.nodes.register("10.0.0.50:5050", "spare", "secret", tls=False)
    spare = cs.nodes.get_by_name("spare")
    cs.nodes.update(spare.id, {"id": spare.id, "address": "10.0.0.51:5050", "name": "spare",
                               "password": "secret", "tls": True})
    assert cs.nodes.get_by_id(spare.id).tls is True
    cs.nodes.refresh_types()
    assert cs.nodes.check_type_updates() == []
    assert cs.nodes.delete([spare.id]) == []
    with pytest.raises(EcsmNotFound):
        cs.nodes.get_by_id(spare.id)


def test_a_node_used_by_a_service_is_not_deleted(cs: Clientset) -> None:
    sid = cs.services.create(body("pin", nodes=["node-2"], policy="static"))["id"]
    node = cs.nodes.get_by_name("node-2")
    conflicts = cs.nodes.delete([node.id])
    assert conflicts[0].id == node.id and sid in {s.id for s in conflicts[0].serves}
    assert cs.nodes.get_by_id(node.id).name == "node-2"


def test_image_endpoints_answer(cs: Clientset) -> None:
    refs = {i.ref for i in cs.images.list_all()}
    assert {"app@1.0#sylixos", "app@1.1#sylixos", "app@2.0#sylixos", "web@1.0#sylixos",
            "db@1.0#sylixos"} <= refs
    config = cs.images.config("app@1.0#sylixos")
    assert config["sylixos"]["resources"]["memory"]["memoryLimitMB"] > 0 and config["platform"]
    details = cs.images.details_by_ref("local", "db@1.0#sylixos")
    assert details.name == "db" and details.config
    assert cs.images.details("local", details.id).id == details.id
    assert cs.images.summary().local == len(refs)
    assert cs.images.repositories()[0].registry_name == "本地仓库"
    with pytest.raises(EcsmNotFound):
        cs.images.details_by_ref("local", "db@9.9")


def test_list_all_collects_every_page_without_duplicates(cs: Clientset) -> None:
    ids = {cs.services.create(body(f"pg-{i}"))["id"] for i in range(5)}
    rows = cs.services.list_all(name="pg-", page_size=2)
    assert {r.id for r in rows} == ids and len(rows) == 5
    third = cs.services.list(3, 2, name="pg-")
    assert (third.total, third.page_num, third.page_size, len(third.items)) == (5, 3, 2, 1)
    assert cs.services.list(4, 2, name="pg-").items == ()
    containers = cs.containers.list_all_by_service(sorted(ids), page_size=2)
    assert len({c.id for c in containers}) == 5


def test_unknown_ids_are_not_found(cs: Clientset) -> None:
    for call in (lambda: cs.services.get("nope"), lambda: cs.services.delete("nope"),
                 lambda: cs.containers.get_by_task_id("nope"),
                 lambda: cs.containers.action_by_name("nope", "start"),
                 lambda: cs.nodes.get_by_id("nope"), lambda: cs.nodes.get_by_name("nope"),
                 lambda: cs.nodes.node_view("nope"), lambda: cs.images.details("local", "x")):
        with pytest.raises(EcsmNotFound):
            call()


def test_a_duplicate_name_is_refused_with_name_exists(cs: Clientset) -> None:
    cs.services.create(body("twice"))
    with pytest.raises(EcsmApiError) as e:
        cs.services.create(body("twice"))
    assert e.value.status == 400 and e.value.message == "name exists"


def test_unknown_nodes_or_images_are_named_in_field_errors(cs: Clientset) -> None:
    with pytest.raises(EcsmApiError) as e:
        cs.services.create(body("bad", nodes=["node-9"], ref="ghost@1.0"))
    assert "node-9" in (e.value.field_errors or "") and "ghost@1.0" in (e.value.field_errors
                                                                       or "")


@pytest.mark.parametrize("kind", ["http5xx", "envelope"])
def test_injected_server_errors_are_api_errors(sim: RunningSimulator, cs: Clientset,
                                               kind: str) -> None:
    sim.admin.faults(error_rate=1.0, error_kind=kind)
    with pytest.raises(EcsmApiError) as e:
        cs.nodes.list_all()
    assert e.value.status == 500 and not e.value.is_client_error


def test_a_malformed_body_is_a_decode_error(sim: RunningSimulator, cs: Clientset) -> None:
    sim.admin.faults(error_rate=1.0, error_kind="malformed")
    with pytest.raises(EcsmDecodeError, match="raw response"):
        cs.images.summary()


def test_a_slow_server_is_a_timeout(sim: RunningSimulator) -> None:
    sim.admin.faults(latency=1.0)
    client = sim.clientset(read_timeout=0.2)
    try:
        with pytest.raises(EcsmUnavailable, match="timeout") as e:
            client.images.summary()
        assert e.value.url.endswith("/api/v1/image/summary")
    finally:
        sim.admin.reset_faults()
        client.close()


@pytest.mark.parametrize("fault", [{"drop_rate": 1.0}, {"partition": True}])
def test_a_dropped_connection_is_unavailable(sim: RunningSimulator, cs: Clientset,
                                             fault: dict[str, Any]) -> None:
    sim.admin.faults(**fault)
    with pytest.raises(EcsmUnavailable):
        cs.nodes.list_all()
    sim.admin.reset_faults()
    assert cs.nodes.list_all()


def test_a_refused_connection_is_unavailable_and_names_the_url() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = Clientset.from_url(f"http://127.0.0.1:{port}")
    with pytest.raises(EcsmUnavailable, match="connection refused") as e:
        client.services.list_all()
    assert f"127.0.0.1:{port}/api/v1/service" in e.value.url
