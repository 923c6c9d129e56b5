"""Watch events of registries on etcd, end to end: real registry processes on one etcd
server (one member, shared by the module), informers in the test's process.

Every change reaches an informer once and in order, the writes made through another
registry on the same prefix included; a subscriber that loses events finds the gap by the
event chain and replays; a history compacted meanwhile makes the informer relist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ecsm_actors.config import ControllerSettings, load_config
from ecsm_actors.informer import Informer
from ecsm_actors.protocol import Op
from ecsm_actors.registry.client import RegistryClient, Subscriber
from ecsm_actors.store.etcd_store import EtcdStore
from tests.etcd_cluster import EtcdCluster
from tests.helpers import Processes, RecordingHandler, wait_until
from tests.registry_fixtures import start_registry
from tests.registry_samples import service, with_changes

pytestmark = pytest.mark.timeout(60)

KIND = "ECSMService"


def etcd_env(server: EtcdCluster, prefix: str) -> dict[str, str]:
    return {"ECSM_ACTORS_STORE_BACKEND": "etcd",
            "ECSM_ACTORS_STORE_ETCD_ENDPOINTS": server.endpoints[0],
            "ECSM_ACTORS_STORE_ETCD_PREFIX": prefix,
            "ECSM_ACTORS_REGISTRY_HEARTBEAT_INTERVAL": "0.2"}


@pytest.fixture
def informer_of(processes: Processes) -> Any:
    """``informer_of(env, handler, rcvhwm=...)``: an informer of the run dir's registry;
    the clients and subscribers it made are closed at teardown (a step-driven informer
    does not close them itself)."""
    made: list[Any] = []

    def keep(thing: Any) -> Any:
        made.append(thing)
        return thing

    def make(env: dict[str, str], handler: RecordingHandler, *, rcvhwm: int = 100_000) -> Informer:
        cfg = load_config(None, environ=processes.env(env))
        return Informer(
            KIND, handler,
            registry_factory=lambda: keep(RegistryClient(cfg.registry_endpoint, timeout=5.0)),
            subscriber_factory=lambda: keep(Subscriber(cfg.events_endpoint, rcvhwm=rcvhwm)),
            settings=ControllerSettings(watch_deadline=5.0, resync_period=0.0))

    yield make
    for thing in made:
        thing.close()


@pytest.fixture
def second(tmp_path: Path) -> Any:
    """The processes of a second run dir (a second registry on the same store)."""
    run_dir = tmp_path / "second"
    run_dir.mkdir(mode=0o700)
    procs = Processes(run_dir)
    yield procs
    procs.cleanup()


def test_an_informer_sees_every_change_once_in_order_through_either_registry(
        processes: Processes, second: Processes, etcd_server: EtcdCluster,
        etcd_prefix: str, informer_of: Any) -> None:
    env = etcd_env(etcd_server, etcd_prefix)
    _, here = start_registry(processes, env)
    _, there = start_registry(second, env)
    handler = RecordingHandler()
    informer = informer_of(env, handler).start()
    try:
        assert informer.wait_for_sync(10)
        expected = []
        a = here.create(service("a"))
        expected.append(("add", "default/a", a["metadata"]["resourceVersion"]))
        b = there.create(service("b"))
        expected.append(("add", "default/b", b["metadata"]["resourceVersion"]))
        batch = there.batch([{"op": "CREATE", "object": service("c")},
                             {"op": "UPDATE", "object": with_changes(
                                 a, spec__template__image="app@2.0#sylixos")}],
                            atomic=True)
        rv = batch.resource_version
        expected += [("add", "default/c", rv), ("update", "default/a", rv)]
        here.delete(KIND, "default", "b")
        wait_until(lambda: len(handler.calls) >= 5, timeout=10, what="five changes")
        deleted = handler.calls[4]
        expected.append(("delete", "default/b", deleted[2]))
        assert deleted[2] > rv
        assert handler.calls == expected
        stats = informer.stats()
        assert (stats["replays"], stats["relists"]) == (0, 1)
    finally:
        informer.stop()
        here.close()
        there.close()


def pump(informer: Informer, handler: RecordingHandler, done: Any, what: str) -> None:
    """Drive a step-by-step informer until ``done(handler.calls)``."""
    def stepped() -> bool:
        informer.step()
        return bool(done(handler.calls))
    wait_until(stepped, timeout=15, interval=0.0, what=what)


def test_a_subscriber_that_loses_events_finds_the_gap_by_the_chain_and_replays(
        processes: Processes, etcd_server: EtcdCluster, etcd_prefix: str,
        informer_of: Any) -> None:
    env = {**etcd_env(etcd_server, etcd_prefix), "ECSM_ACTORS_REGISTRY_PUB_HWM": "1"}
    _, client = start_registry(processes, env)
    handler = RecordingHandler()
    informer = informer_of(env, handler, rcvhwm=1)
    try:
        informer.step()  # subscribe, list; then the reader pauses
        assert informer.has_synced()
        padding = "x" * 8000  # more than the sockets' buffers hold: events are dropped
        names = [f"s{i:03d}" for i in range(100)]
        result = client.batch([{"op": "CREATE", "object": service(n, annotations={"pad": padding})}
                               for n in names])
        versions = {f"default/{n}": r.result["metadata"]["resourceVersion"]
                    for n, r in zip(names, result.results, strict=True)}
        pump(informer, handler, lambda calls: len(calls) >= len(names),
             "every creation delivered")
        assert sorted(handler.calls) == sorted(("add", k, rv) for k, rv in versions.items())
        stats = informer.stats()
        assert stats["replays"] >= 1 and stats["relists"] == 1
    finally:
        informer.stop()
        client.close()


def test_a_history_compacted_while_the_registry_was_away_makes_the_informer_relist(
        processes: Processes, etcd_server: EtcdCluster, etcd_prefix: str,
        informer_of: Any) -> None:
    env = etcd_env(etcd_server, etcd_prefix)
    proc, client = start_registry(processes, env)
    handler = RecordingHandler()
    informer = informer_of(env, handler)
    store = EtcdStore(etcd_server.client(), prefix=etcd_prefix)
    try:
        informer.step()
        client.create(service("seen"))
        pump(informer, handler, lambda calls: calls, "the first creation")
        processes.kill(proc)
        proc.wait(10)
        missed = store.write(Op.CREATE, object=service("missed"))
        store.client.compact(store.client.put(f"{etcd_prefix}filler", b""))
        _, again = start_registry(processes, env)
        pump(informer, handler, lambda calls: len(calls) >= 2, "the missed creation")
        assert handler.calls[1] == ("add", "default/missed",
                                    missed["metadata"]["resourceVersion"])
        assert informer.stats()["relists"] == 2
        again.close()
    finally:
        informer.stop()
        store.close()
        client.close()
