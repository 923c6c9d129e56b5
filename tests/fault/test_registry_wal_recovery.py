"""The registry killed with SIGKILL amid writes, its store then opened as after a reboot,
or in the same boot with acknowledged writes still in its uncommitted batch: the
write-ahead log the real process left is replayed onto the last checkpoint, and every
acknowledged write is there (the power-loss cases with torn files are in
tests/unit/test_store_power_loss.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ecsm_actors.store import Store
from tests.fault.test_registry_crash import Writer
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import StartRegistry, registry_config, registry_starter
from tests.registry_samples import service


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


@pytest.mark.timeout(30)
def test_acknowledged_writes_in_the_uncommitted_batch_survive_a_kill_in_the_same_boot(
        processes: Processes, registry: StartRegistry) -> None:
    env = {"ECSM_ACTORS_REGISTRY_COMMIT_INTERVAL": "3600",
           "ECSM_ACTORS_REGISTRY_CHECKPOINT_INTERVAL": "3600"}
    proc, client = registry(env)
    for i in range(5):  # acknowledged: in the log, in no commit of data.mdb
        client.create(service(f"b{i}", replicas=i))
    processes.kill(proc)
    proc.wait(timeout=10)

    cfg = registry_config(processes, env)
    store = Store(cfg.data_dir, map_size=cfg.registry.map_size)  # this boot
    try:
        stored = {o["metadata"]["name"]: o for o in store.list_objects("ECSMService")[0]}
        assert sorted(stored) == [f"b{i}" for i in range(5)]
        assert store._ckpt.stats["replayed"] >= 5  # from the log
        assert [stored[f"b{i}"]["spec"]["deploymentStrategy"]["replicas"]
                for i in range(5)] == list(range(5))
    finally:
        store.close()
