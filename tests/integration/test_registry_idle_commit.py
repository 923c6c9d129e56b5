"""The registry's loop and its store's batch (``registry.commit_interval``,
``RegistryServer._serve_local``): a loop left idle wakes once the batch is due and
commits it then, not at the end of a wait that began while the batch was younger (else
the next write's turn commits it, in the way of that write's reply)."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from ecsm_actors.registry.server import RegistryServer
from ecsm_actors.store import Store
from tests.store_writes import create

pytestmark = pytest.mark.timeout(30)


def test_an_idle_loop_commits_the_batch_once_it_is_due_not_at_the_end_of_its_wait(
        server: RegistryServer, monkeypatch: pytest.MonkeyPatch) -> None:
    store = server.store
    assert isinstance(store, Store) and 0 < store.commit_interval < 0.5
    fds = server._router_alone()
    assert fds is not None
    server._router_armed = False  # as serve() starts
    monkeypatch.setattr(server, "_collector", SimpleNamespace(collect=lambda: None),
                        raising=False)  # made by serve()
    committed: list[float] = []
    flush = store.flush

    def noted() -> None:
        committed.append(time.monotonic())
        flush()

    monkeypatch.setattr(store, "flush", noted)
    store.execute([create("s0")])
    assert store._open_batch is not None  # younger than commit_interval
    began = time.monotonic()
    while not committed and time.monotonic() - began < 5:
        server._serve_local(fds, 0.4)  # nothing to serve: waits up to 0.4 s
    assert store._open_batch is None
    assert committed[0] - began < 0.2  # woken when due, not after the 0.4 s
