"""The simulator's admin API (``/_sim/``) over HTTP refuses NaN, Infinity and absurd
numbers with a 400 naming the key, changes nothing, and keeps serving — a NaN latency once
stored killed the handler thread of every ECSM request that followed."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.ecsm_sim import RunningSimulator, running_simulator

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def sim() -> Iterator[RunningSimulator]:
    with running_simulator("--nodes", "1", "--start-delay", "0.1") as s:
        yield s


@pytest.fixture(scope="module")
def service_id(sim: RunningSimulator) -> str:
    cs = sim.clientset()
    try:
        created = cs.services.create({"name": "loaded", "factor": 1, "policy": "dynamic",
                                      "image": {"ref": "app@1.0#sylixos", "action": "run",
                                                "config": None}, "node": {"names": None}})
        return str(created["id"])
    finally:
        cs.close()


def call(sim: RunningSimulator, method: str, path: str,
         raw: str | None = None) -> tuple[int, dict[str, Any]]:
    """One request with ``raw`` as the body, exactly as written (NaN literals included)."""
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=10)
    try:
        conn.request(method, path, body=raw, headers={"Content-Type": "application/json"})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def api_answers(sim: RunningSimulator) -> bool:
    """An ECSM request is answered (its handler thread survived the faults in force)."""
    status, doc = call(sim, "GET", "/api/v1/node?pageNum=1&pageSize=10")
    return status == 200 and doc["data"]["total"] == 1


HOSTILE = [
    ("faults", '{"latency": NaN}', "latency: expected a finite number"),
    ("faults", '{"latency": Infinity}', "latency: expected a finite number"),
    ("faults", '{"latency": -Infinity}', "latency: expected a finite number"),
    ("faults", '{"latency": "nan"}', "latency: expected a number"),
    ("faults", '{"latency": -0.5}', "latency: expected a number within 0..60"),
    ("faults", '{"latency": 1e9}', "latency: expected a number within 0..60"),
    ("faults", '{"latency": true}', "latency: expected a number"),
    ("faults", '{"error_rate": NaN}', "error_rate: expected a finite number"),
    ("faults", '{"error_rate": 1.5}', "error_rate: expected a number within 0..1"),
    ("faults", '{"drop_rate": -0.1}', "drop_rate: expected a number within 0..1"),
    ("faults", '{"drop_rate": 1e400}', "drop_rate: expected a finite number"),
    ("faults", '{"partition": "false"}', "partition: expected true or false"),
    ("faults", '{"error_kind": ["http5xx"]}', "error_kind: expected one of"),
    ("faults", '{"latecny": 0.1}', "faults: unknown keys"),
    ("faults", '[0.1]', "faults: expected a JSON object"),
    ("start-delay", '{"seconds": NaN}', "seconds: expected a finite number"),
    ("start-delay", '{"seconds": Infinity}', "seconds: expected a finite number"),
    ("start-delay", '{"seconds": -1}', "seconds: expected a number within 0..3600"),
    ("start-delay", '{"seconds": 1e12}', "seconds: expected a number within 0..3600"),
    ("start-delay", '{}', "seconds: required"),
    ("load", '{"cpu": NaN}', "cpu: expected a finite number"),
    ("load", '{"cpu": Infinity}', "cpu: expected a finite number"),
    ("load", '{"cpu": -5}', "cpu: expected a number within 0..1e+06"),
    ("load", '{"cpu": 1e300}', "cpu: expected a number within 0..1e+06"),
    ("load", '{"memory": Infinity}', "memory: expected a finite number"),
    ("load", '{"memory": 1e30}', "memory: expected a number within"),
    ("load", '{"memory": 1' + "0" * 400 + "}", "memory: expected a number within"),
    ("load", '{"memory": 1.5}', "memory: expected a whole number"),
    ("crash", '{"message": ' + json.dumps("x" * 5000) + '}', "message: at most 1024"),
]


@pytest.mark.parametrize(("route", "raw", "says"), HOSTILE,
                         ids=[f"{r}:{raw[:40]}" for r, raw, _ in HOSTILE])
def test_an_absurd_admin_value_is_refused_with_400_and_the_simulator_keeps_serving(
        sim: RunningSimulator, service_id: str, route: str, raw: str, says: str) -> None:
    path = {"load": f"/_sim/services/{service_id}/load",
            "crash": "/_sim/containers/no-such-container/crash"}.get(route, f"/_sim/{route}")
    before = sim.admin.state()
    status, doc = call(sim, "POST", path, raw)
    assert (status, doc["status"], doc["data"]) == (400, 400, None)
    assert doc["fieldErrors"].startswith(says), doc["fieldErrors"]
    assert len(doc["fieldErrors"]) < 300
    after = sim.admin.state()
    assert (after["faults"], after["startDelay"]) == (before["faults"], before["startDelay"])
    assert [s["load"] for s in after["services"]] == [s["load"] for s in before["services"]]
    assert api_answers(sim)


def test_sensible_values_are_still_accepted(sim: RunningSimulator, service_id: str) -> None:
    try:
        assert call(sim, "POST", "/_sim/faults",
                    '{"latency": 0.01, "error_rate": 0, "drop_rate": 0.0, '
                    '"partition": false, "error_kind": "envelope"}')[0] == 200
        assert sim.admin.state()["faults"]["latency"] == 0.01
        assert api_answers(sim)
    finally:
        sim.admin.reset_faults()
    sim.admin.set_load(service_id, cpu=150.0, memory=400 << 20)
    assert call(sim, "POST", f"/_sim/services/{service_id}/load", '{"memory": 4096.0}')[0] == 200
    loaded = next(s for s in sim.admin.state()["services"] if s["id"] == service_id)
    assert loaded["load"] == {"cpu": 150.0, "memory": 4096}
    sim.admin.set_start_delay(0.1)
    assert sim.admin.state()["startDelay"] == 0.1
