"""The service controller end to end: ECSM simulator + registry + ``controller service``
processes; objects written through the registry, reality read from the simulator.

One stack serves the whole module (each test uses its own service names and nodes); the
controller sweeps ECSM for drift every 0.5 s (settled services are not re-checked one by
one), so every repair is visible within seconds and comes through the sweep.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecsm_actors.api import template_hash
from ecsm_actors.cli.ecsm_cli import cli
from ecsm_actors.ecsm.clientset import Clientset
from tests import service_harness as h
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def stack() -> Iterator[h.Stack]:
    run_dir = Path(tempfile.mkdtemp(prefix="ea-svc-", dir="/tmp"))
    run_dir.chmod(0o700)
    procs = Processes(run_dir)
    try:
        s = h.start_stack(procs, nodes=6, start_delay=0.2)
        yield s
        s.close()
    finally:
        procs.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


def apply(stack: h.Stack, obj: dict) -> dict:
    return stack.registry.apply(obj).object


def revision_name(stack: h.Stack, name: str) -> str:
    template = h.get(stack.registry, name)["spec"]["template"]
    return f"default.{name}.{template_hash(template)}"


def wait_settled(stack: h.Stack, name: str, timeout: float = 20) -> None:
    wait_until(lambda: h.settled(stack.registry, name), timeout=timeout,
               what=f"{name} settled")


def cli_run(stack: h.Stack, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--run-dir", str(stack.processes.run_dir), *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_service_is_created_then_scaled_up_and_down(stack: h.Stack) -> None:
    apply(stack, h.service("scale", replicas=2))
    wait_settled(stack, "scale")
    [(name, svc)] = h.ecsm(stack.admin, "default.scale.").items()
    assert svc["factor"] == 2 and svc["statuses"] == ["running"] * 2
    status = h.get(stack.registry, "scale")["status"]
    assert status["underlyingServiceIDs"] == [svc["id"]]
    assert status["readyReplicas"] == 2
    for replicas in (4, 1):
        apply(stack, h.service("scale", replicas=replicas))
        def running(r: int = replicas) -> bool:
            return h.totals(stack.admin, "default.scale.") == (r, r)
        wait_until(running, timeout=15, what=f"{replicas} running")
        wait_settled(stack, "scale")
        assert list(h.ecsm(stack.admin, "default.scale.")) == [name]  # no new revision


def test_a_static_node_list_change_moves_the_instances(stack: h.Stack) -> None:
    apply(stack, h.service("placed", nodes=["node-1", "node-2"]))
    wait_settled(stack, "placed")
    apply(stack, h.service("placed", nodes=["node-2", "node-3", "node-4"]))
    wait_until(lambda: [s["nodes"] for s in h.ecsm(stack.admin, "default.placed.").values()]
               == [["node-2", "node-3", "node-4"]], timeout=15, what="instances moved")
    wait_settled(stack, "placed")


def test_a_rollout_respects_surge_and_unavailable_at_every_instant_and_undo_goes_back(
        stack: h.Stack) -> None:
    rollout = {"maxSurge": 1, "maxUnavailable": 1, "revisionHistoryLimit": 2}
    apply(stack, h.service("roll", replicas=4, rollout=rollout))
    wait_settled(stack, "roll")
    first = revision_name(stack, "roll")
    apply(stack, h.service("roll", image="app@1.1", replicas=4, rollout=rollout))
    second = revision_name(stack, "roll")
    observed = []
    deadline = time.monotonic() + 30
    while not h.settled(stack.registry, "roll"):
        assert time.monotonic() < deadline, "rollout did not finish"
        observed.append(h.totals(stack.admin, "default.roll."))
    assert len(observed) >= 3, "the rollout was not observed while in flight"
    for total, running in observed:
        assert total <= 5, f"maxSurge exceeded: {observed}"
        assert running >= 3, f"maxUnavailable exceeded: {observed}"
    services = h.ecsm(stack.admin, "default.roll.")
    assert services[second]["factor"] == 4 and services[first]["factor"] == 0

    history = cli_run(stack, "rollout", "history", "roll").splitlines()
    assert history[1].split() == ["REVISION", "HASH", "IMAGE", "FACTOR", "READY", "CURRENT"]
    rows = [row.split() for row in history[2:]]
    assert [[r[0], r[2], r[3], r[5]] for r in rows] == [["1", "app@1.0", "0", "-"],
                                                       ["2", "app@1.1", "4", "yes"]]
    assert "successfully rolled out" in cli_run(stack, "rollout", "status", "roll",
                                                "--timeout", "20")
    assert "rolled back to revision 1" in cli_run(stack, "rollout", "undo", "roll")
    output = cli_run(stack, "rollout", "status", "roll", "--timeout", "30")
    assert output.strip().endswith('ecsmservice "roll" successfully rolled out')
    wait_settled(stack, "roll")
    services = h.ecsm(stack.admin, "default.roll.")
    assert set(services) == {first, second}  # the kept revision came back, none created
    assert services[first]["factor"] == 4 and services[second]["factor"] == 0


def test_a_service_is_deployed_only_after_its_dependencies_are_available(
        stack: h.Stack) -> None:
    apply(stack, h.service("front", replicas=1, depends_on=["back"]))
    wait_until(lambda: h.condition(stack.registry, "front", "Progressing")
               == ("False", "WaitingForDependencies"), timeout=10, what="front waiting")
    assert h.ecsm(stack.admin, "default.front.") == {}
    apply(stack, h.service("back", image="db@1.0", replicas=1))
    wait_settled(stack, "front")
    back = h.get(stack.registry, "back")
    front = h.get(stack.registry, "front")
    available = {c["type"]: c for c in back["status"]["conditions"]}["Available"]
    created = {c["type"]: c for c in front["status"]["conditions"]}["Available"]
    assert available["lastTransitionTime"] <= created["lastTransitionTime"]


def test_deleting_a_service_deletes_every_revision_on_ecsm(stack: h.Stack) -> None:
    apply(stack, h.service("doomed", replicas=1))
    wait_settled(stack, "doomed")
    apply(stack, h.service("doomed", image="app@2.0", replicas=1))
    wait_settled(stack, "doomed")
    assert len(h.ecsm(stack.admin, "default.doomed.")) == 2
    stack.registry.delete("ECSMService", "default", "doomed")
    wait_until(lambda: h.gone(stack.registry, "doomed"), timeout=15, what="object gone")
    assert h.ecsm(stack.admin, "default.doomed.") == {}


def test_drift_behind_the_operators_back_is_repaired(stack: h.Stack) -> None:
    apply(stack, h.service("drift", replicas=2, pool=["node-1", "node-2", "node-3"]))
    wait_settled(stack, "drift")
    with Clientset.from_config(h.config(stack.processes.run_dir)) as client:
        # deleted
        [svc] = h.ecsm(stack.admin, "default.drift.").values()
        client.services.delete(svc["id"])
        wait_until(lambda: h.totals(stack.admin, "default.drift.") == (2, 2), timeout=15,
                   what="service recreated")
        # scaled
        [svc] = h.ecsm(stack.admin, "default.drift.").values()
        detail = client.services.get(svc["id"])
        client.services.update(svc["id"], {**detail.raw, "factor": 5,
                                           "node": {"names": svc["names"]}})
        wait_until(lambda: h.totals(stack.admin, "default.drift.") == (2, 2), timeout=15,
                   what="factor restored")
        # crashed and stopped
        [svc] = h.ecsm(stack.admin, "default.drift.").values()
        stack.admin.crash_container(svc["containers"][0])
        client.containers.action_by_name(svc["containers"][1], "stop")
        wait_until(lambda: [s["statuses"] for s in h.ecsm(stack.admin, "default.drift.")
                            .values()] == [["running", "running"]],
                   timeout=15, what="containers running again")
    wait_settled(stack, "drift")


def test_a_down_node_is_avoided_by_dynamic_and_reported_by_static(stack: h.Stack) -> None:
    apply(stack, h.service("dyn", replicas=2, pool=["node-5", "node-6"]))
    apply(stack, h.service("fixed", nodes=["node-5", "node-6"]))
    wait_settled(stack, "dyn")
    wait_settled(stack, "fixed")
    stack.admin.node_down("node-6")
    try:
        wait_until(lambda: h.totals(stack.admin, "default.dyn.") == (2, 2)
                   and all("node-6" not in s["nodes"]
                           for s in h.ecsm(stack.admin, "default.dyn.").values()),
                   timeout=15, what="dynamic instances re-placed off node-6")
        wait_until(lambda: h.condition(stack.registry, "fixed", "Degraded")
                   == ("True", "NodeDown"), timeout=15, what="static reports NodeDown")
    finally:
        stack.admin.node_up("node-6")
    wait_until(lambda: h.condition(stack.registry, "fixed", "Degraded")
               == ("False", "AsExpected"), timeout=15, what="static recovered")
    wait_settled(stack, "fixed")
