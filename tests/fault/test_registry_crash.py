"""The registry killed with SIGKILL mid-write loses no acknowledged write and leaves nothing
half-written; a wiped store comes back with a new epoch."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecsm_actors.errors import AlreadyExists, Unavailable
from ecsm_actors.registry.client import RegistryClient
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import StartRegistry, registry_config, registry_starter
from tests.registry_samples import service


@pytest.fixture
def registry(processes: Processes) -> Iterator[StartRegistry]:
    yield from registry_starter(processes)


class Writer(threading.Thread):
    """Writes continuously through every outage; records what the registry acknowledged."""

    def __init__(self, endpoint: str) -> None:
        super().__init__(daemon=True)
        self.client = RegistryClient(endpoint, timeout=0.3)
        self.acked: dict[str, int] = {}  # name -> replicas acknowledged
        #: The write being tried: (name, replicas); its outcome unknown while it is.
        self.trying: tuple[str, int] | None = None
        self.outages = 0
        self.stop = threading.Event()

    def ops(self) -> Iterator[tuple[str, str, int]]:
        i = 0
        while True:
            yield "create", f"s{i}", i % 7
            if i % 3 == 0 and i:
                yield "update", f"s{i - 1}", 50
            i += 1

    def run(self) -> None:
        for op, name, replicas in self.ops():
            self.trying = (name, replicas)
            while not self.stop.is_set():  # retry one write until its outcome is known
                try:
                    if op == "create":
                        self.client.create(service(name, replicas=replicas))
                    else:
                        self.client.update(service(name, replicas=replicas))
                except AlreadyExists:
                    pass  # committed before the crash, acknowledgement lost: ours anyway
                except Unavailable:
                    self.outages += 1
                    continue
                self.acked[name] = replicas
                break
            if self.stop.is_set():
                break
        self.client.close()


@pytest.mark.timeout(60)
def test_a_killed_registry_keeps_every_acknowledged_write(
        processes: Processes, registry: StartRegistry) -> None:
    proc, client = registry()
    epoch = client.ping()["epoch"]
    writer = Writer(registry_config(processes).registry_endpoint)
    writer.start()
    wait_until(lambda: len(writer.acked) >= 150, timeout=20, what="150 acknowledged writes")
    processes.kill(proc)
    proc.wait(timeout=10)
    wait_until(lambda: writer.outages > 0, timeout=10, what="the writer to notice the crash")
    before_restart = len(writer.acked)
    _, again = registry()
    wait_until(lambda: len(writer.acked) >= before_restart + 50, timeout=20,
               what="writes after the restart")
    writer.stop.set()
    writer.join(timeout=10)

    assert again.ping()["epoch"] == epoch
    stored = {o["metadata"]["name"]: o for o in again.list("ECSMService").items}
    for name, replicas in writer.acked.items():
        assert name in stored, f"acknowledged {name} lost"
        assert stored[name]["spec"]["deploymentStrategy"]["replicas"] == replicas, name
    rv = again.ping()["resourceVersion"]
    events = again.watch_since(0).events
    assert [e.seq for e in events] == list(range(1, rv + 1))
    last_event = {}
    for e in events:
        last_event[e.key] = e
    for name, obj in stored.items():
        assert last_event[f"default/{name}"].object == obj, f"{name} half-written"


def test_a_wiped_store_comes_back_empty_with_a_new_epoch(
        processes: Processes, registry: StartRegistry) -> None:
    proc, client = registry()
    client.create(service("web"))
    old_epoch = client.epoch
    processes.kill(proc)
    proc.wait(timeout=10)
    shutil.rmtree(Path(registry_config(processes).data_dir))
    _, again = registry()
    assert again.ping()["resourceVersion"] == 0
    assert again.epoch != old_epoch
    assert again.list("ECSMService").items == []
    client.ping()
    assert client.epoch == again.epoch


def test_a_request_in_flight_when_the_registry_dies_is_retried_at_once_not_at_its_timeout(
        processes: Processes, registry: StartRegistry) -> None:
    proc, _ = registry()
    cfg = registry_config(processes)
    client = RegistryClient(cfg.registry_endpoint, timeout=30.0, deadline=60.0)
    client.ping()
    client.rtt.observe(10.0)  # as on a slow link: an unanswered attempt waits 30 s
    os.kill(proc.pid, signal.SIGSTOP)  # the request below is delivered but never answered

    def kill_and_restart() -> None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        registry()

    successor = threading.Timer(0.3, kill_and_restart)
    successor.start()
    started = time.monotonic()
    answer = client.ping()  # retried on the dropped connection, answered by the successor
    assert time.monotonic() - started < 10.0  # far below the 30 s of the attempt
    assert answer["pid"] != proc.pid
    successor.join(timeout=20)
    client.close()
