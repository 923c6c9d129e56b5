"""How each side of the registry's request socket waits: the client for its reply, the
registry for the next request, each with one ``poll`` of its socket's descriptor (and the
client's monitor's) rather than libzmq's ``zmq_poll`` — fewer system calls a round trip —
and every request still answered: several clients' reads and writes interleaved, requests
arriving while the registry sends the replies of a group commit."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from ecsm_actors.config import load_config
from ecsm_actors.lifecycle import StopFlag
from ecsm_actors.registry.client import RegistryClient
from ecsm_actors.registry.server import RegistryServer
from tests.registry_samples import service, with_changes

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def serving(run_dir: Path) -> Iterator[RegistryServer]:
    """A registry served by a thread of the test's process (its local ipc:// socket only)."""
    cfg = load_config(None, environ={"ECSM_ACTORS_RUN_DIR": str(run_dir)})
    server = RegistryServer(cfg)
    stop = StopFlag()
    thread = threading.Thread(target=server.serve, args=(stop,), name="registry-loop",
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(10)
        gc.unfreeze()  # serve() froze what the test process had allocated
        server.close()


def test_clients_and_the_registry_wait_without_zmq_poll_and_every_request_is_answered(
        serving: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> None:
    pollers: list[str] = []  # the threads that waited through zmq.Poller while measured
    measuring = threading.Event()
    poll = zmq.Poller.poll

    def watched(self: zmq.Poller, timeout: int | None = None) -> Any:
        if measuring.is_set():
            pollers.append(threading.current_thread().name)
        return poll(self, timeout)

    monkeypatch.setattr(zmq.Poller, "poll", watched)
    endpoint = serving.cfg.registry_endpoint
    retries: list[int] = []
    clients = [RegistryClient(endpoint, timeout=5.0, on_wait=lambda n, _: retries.append(n))
               for _ in range(3)]
    for client in clients:
        client.ping()  # connected and handshaken before measuring
    failures: list[str] = []
    stored: dict[str, dict[str, Any]] = {}

    def work(n: int, client: RegistryClient) -> None:
        try:
            for i in range(30):
                name = f"svc-{n}-{i}"
                created = client.create(service(name))
                assert client.get("ECSMService", "default", name) == created
                updated = client.update(with_changes(created, spec__priority=i % 5))
                stored[name] = updated
        except Exception as e:  # noqa: BLE001 - reported by the test
            failures.append(f"client {n}: {e!r}")

    measuring.set()
    threads = [threading.Thread(target=work, args=(n, c), name=f"client-{n}")
               for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    measuring.clear()
    try:
        assert not failures
        assert len(stored) == 90
        assert all(clients[0].get("ECSMService", "default", name) == obj
                   for name, obj in stored.items())
        assert "registry-loop" not in pollers
        if not retries:  # a retry (a stall of this process) also waits on its earlier socket
            assert pollers == [], f"waited through zmq_poll: {sorted(set(pollers))}"
    finally:
        for client in clients:
            client.close()
