"""Event records end to end: written to a real registry process, listed and followed by
``ecsm-cli get events``, shown at the end of ``describe``, expired after
``registry.event_ttl``; and the events a rollout on the real simulator produces."""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.api.names import format_timestamp
from ecsm_actors.cli.ecsm_cli import main as cli_main
from ecsm_actors.errors import StoreFull
from ecsm_actors.registry.client import RegistryClient
from tests import service_harness as h
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import RunCli, StartRegistry
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(60)

TTL = 3


@pytest.fixture
def client_and_cli(processes: Processes, registry: StartRegistry,
                   monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> tuple[RegistryClient, RunCli]:
    for var in [v for v in os.environ if v.startswith("ECSM_ACTORS_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("ECSM_ACTORS_RUN_DIR", str(processes.run_dir))
    _, client = registry(env={"ECSM_ACTORS_REGISTRY_EVENT_TTL": str(TTL)})

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        code = cli_main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return client, run


def occurrence(name: str, reason: str, message: str, *, kind: str = "ECSMService",
               at: float | None = None, count: int = 1) -> dict[str, Any]:
    ts = format_timestamp(time.time() if at is None else at)
    return {"involvedObject": {"kind": kind, "namespace": "default", "name": name},
            "type": "Normal", "reason": reason, "message": message, "count": count,
            "firstTimestamp": ts, "lastTimestamp": ts,
            "source": {"component": "service-controller"}}


def test_events_are_listed_for_an_object_shown_by_describe_and_expire(
        client_and_cli: tuple[RegistryClient, RunCli]) -> None:
    client, cli = client_and_cli
    client.create(service("web"))
    client.record_events([occurrence("web", "ScaledUp", "scaled revision abc from 1 to 3")])
    client.record_events([occurrence("web", "ScaledUp", "scaled revision abc from 1 to 3",
                                     count=4),
                          occurrence("db", "Created", "created revision def")])
    client.record_events([occurrence("web", "Stale", "long ago", at=time.time() - 3600)])

    code, out, err = cli("get", "events", "--for", "esvc/web")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE"]
    assert len(lines) == 2
    assert lines[1].split()[1:5] == ["Normal", "ScaledUp", "ecsmservice/web", "5"]

    code, out, _ = cli("get", "events", "-o", "json")
    assert code == 0 and out.count('"reason"') == 2

    code, out, err = cli("describe", "esvc", "web")
    assert code == 0, err
    events = out[out.index("Events:"):]
    assert "ScaledUp" in events and "x5" in events and "Created" not in events

    def expired() -> bool:  # the records' age passes the TTL
        code, out, err = cli("get", "events", "-A")
        return code == 0 and out == "" and "No events found" in err

    wait_until(expired, timeout=TTL + 5, interval=0.5, what="the events to expire")
    code, out, _ = cli("describe", "esvc", "web")
    assert "Events:  <none>" in out


def test_get_events_rejects_a_bad_for_and_since_with_one_line(
        client_and_cli: tuple[RegistryClient, RunCli]) -> None:
    _, cli = client_and_cli
    code, _, err = cli("get", "events", "--for", "web")
    assert code == 2 and "KIND/NAME" in err and "Traceback" not in err
    code, _, err = cli("get", "events", "--since", "ninety")
    assert code == 2 and "duration" in err


@pytest.fixture(scope="module")
def stack() -> Iterator[h.Stack]:
    run_dir = Path(tempfile.mkdtemp(prefix="ea-ev-", dir="/tmp"))
    run_dir.chmod(0o700)
    procs = Processes(run_dir)
    try:
        s = h.start_stack(procs, nodes=3, start_delay=0.1)
        yield s
        s.close()
    finally:
        procs.cleanup()
        shutil.rmtree(run_dir, ignore_errors=True)


def test_a_rollout_on_the_simulator_records_its_events(stack: h.Stack) -> None:
    stack.registry.apply(h.service("roll", replicas=2))
    wait_until(lambda: h.settled(stack.registry, "roll"), timeout=20, what="roll settled")
    stack.registry.apply(h.service("roll", replicas=2, image="app@2.0"))
    wait_until(lambda: h.settled(stack.registry, "roll"), timeout=20, what="roll rolled out")

    def reasons() -> list[str]:
        return [r["reason"] for r in stack.registry.list_events(
            "default", kind="ECSMService", name="roll")]

    wanted = {"Created", "RolloutStarted", "ScaledDown", "RolloutComplete"}
    wait_until(lambda: wanted <= set(reasons()), timeout=10,
               what=f"the rollout's events {sorted(wanted)}")
    complete = [r for r in stack.registry.list_events("default", kind="ECSMService",
                                                       name="roll")
                if r["reason"] == "RolloutComplete"]
    assert len(complete) == 2  # the first revision's, then the second's
    assert complete[-1]["source"]["component"] == "service-controller"
    assert complete[-1]["involvedObject"]["uid"]


def test_an_event_flood_is_refused_beyond_the_budget_and_objects_are_still_written(
        client_and_cli: tuple[RegistryClient, RunCli]) -> None:
    client, _ = client_and_cli
    refused = 0
    for b in range(30):
        batch = [occurrence(f"flood-{b}-{i}", "Flood", "x") for i in range(100)]
        try:
            client.record_events(batch)
        except StoreFull:
            refused += 1
    assert refused > 0
    assert client.create(service("still-written"))["metadata"]["resourceVersion"]
    assert len(client.list_events(None)) <= 3000 - refused * 100
