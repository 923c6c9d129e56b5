"""The registry killed with SIGKILL amid writes, its store then opened as after a reboot:
the write-ahead log the real process left is replayed onto the last checkpoint, and every
acknowledged write is there (the power-loss cases with torn files are in
tests/unit/test_store_power_loss.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ecsm_actors.store import Store
from tests.fault.test_registry_crash import Writer
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import StartRegistry, registry_config, registry_starter


@pytest.fixture
def registry(processes: Processes) -> Iterator[StartRegistry]:
    yield from registry_starter(processes)


@pytest.mark.timeout(60)
def test_after_a_kill_and_a_reboot_the_log_brings_back_every_acknowledged_write(
        processes: Processes, registry: StartRegistry) -> None:
    proc, _ = registry()
    cfg = registry_config(processes)
    writer = Writer(cfg.registry_endpoint)
    writer.start()
    wait_until(lambda: len(writer.acked) >= 150, timeout=20, what="150 acknowledged writes")
    processes.kill(proc)
    proc.wait(timeout=10)
    writer.stop.set()
    writer.join(timeout=10)

    store = Store(cfg.data_dir, map_size=cfg.registry.map_size, boot_id=lambda: "another")
    try:
        assert store._ckpt.stats["replayed"] > 0  # the log, not data.mdb, had the last ones
        stored = {o["metadata"]["name"]: o for o in store.list_objects("ECSMService")[0]}
        for name, replicas in writer.acked.items():
            assert name in stored, f"acknowledged {name} lost"
            held = stored[name]["spec"]["deploymentStrategy"]["replicas"]
            # the write in flight at the kill may be kept: logged, not yet acknowledged
            assert held == replicas or (name, held) == writer.trying, name
        events, rv = store.watch_since(0)
        assert [e.seq for e in events] == list(range(1, rv + 1))
    finally:
        store.close()
