"""Registry processes on the etcd store (``store.backend = "etcd"`` from the environment),
on one 3-member etcd cluster shared by the module: ``ecsm-cli`` apply/get/delete through
one; two registries on one prefix, a write through either read through the other; quorum
lost: reads answered and marked stale (the CLI says so in one line), writes refused
``Unavailable`` naming the store, everything back once quorum returns."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ecsm_actors.errors import Unavailable
from ecsm_actors.protocol import Op
from ecsm_actors.registry.client import RegistryClient
from tests.etcd_cluster import EtcdCluster
from tests.helpers import Processes, wait_until
from tests.registry_fixtures import run_cli, start_registry, without_ecsm_env
from tests.registry_samples import service

pytestmark = pytest.mark.timeout(90)

RunCli = Callable[..., tuple[int, str, str]]


@pytest.fixture
def etcd_env(etcd_cluster: EtcdCluster, etcd_prefix: str) -> dict[str, str]:
    return {"ECSM_ACTORS_STORE_BACKEND": "etcd",
            "ECSM_ACTORS_STORE_ETCD_ENDPOINTS": ",".join(etcd_cluster.endpoints),
            "ECSM_ACTORS_STORE_ETCD_PREFIX": etcd_prefix,
            "ECSM_ACTORS_STORE_ETCD_REQUEST_TIMEOUT": "1.5"}


@pytest.fixture
def clients() -> Iterator[list[RegistryClient]]:
    opened: list[RegistryClient] = []
    yield opened
    for client in opened:
        client.close()


def registry_in(processes: Processes, run_dir: Path, env: dict[str, str],
                clients: list[RegistryClient]) -> RegistryClient:
    """A registry process with its own run dir (one host), on the etcd store."""
    run_dir.mkdir(mode=0o700, exist_ok=True)
    _, client = start_registry(processes, {**env, "ECSM_ACTORS_RUN_DIR": str(run_dir)})
    clients.append(client)
    return client


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunCli:
    """``ecsm-cli`` in-process against the registry of a run dir: ``cli(run_dir, *args)``."""
    without_ecsm_env(monkeypatch)

    def run(run_dir: Path, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        monkeypatch.setenv("ECSM_ACTORS_RUN_DIR", str(run_dir))
        monkeypatch.setenv("ECSM_ACTORS_REGISTRY_REQUEST_DEADLINE", "4")
        return run_cli(monkeypatch, capsys, args, stdin)

    return run


def manifest(path: Path, *docs: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return str(path)


def test_ecsm_cli_applies_gets_and_deletes_through_a_registry_on_etcd(
        processes: Processes, etcd_env: dict[str, str], clients: list[RegistryClient],
        cli: RunCli, tmp_path: Path) -> None:
    host = processes.run_dir / "a"
    registry_in(processes, host, etcd_env, clients)
    path = manifest(tmp_path / "web.yaml", service("web"), service("db"))
    assert cli(host, "apply", "-f", path) == (
        0, "ecsmservice/web created\necsmservice/db created\n", "")
    assert cli(host, "apply", "-f", path)[1] == (
        "ecsmservice/web unchanged\necsmservice/db unchanged\n")
    code, out, _ = cli(host, "get", "esvc", "web", "-o", "yaml")
    assert code == 0 and yaml.safe_load(out)["metadata"]["generation"] == 1
    assert cli(host, "delete", "esvc", "db")[0] == 0
    code, out, _ = cli(host, "get", "esvc")
    assert code == 0 and "web" in out and "db" not in out


def test_two_registries_on_one_prefix_serve_the_same_objects(
        processes: Processes, etcd_env: dict[str, str],
        clients: list[RegistryClient]) -> None:
    a = registry_in(processes, processes.run_dir / "a", etcd_env, clients)
    b = registry_in(processes, processes.run_dir / "b", etcd_env, clients)
    assert a.ping()["epoch"] == b.ping()["epoch"]
    created = a.request(Op.CREATE, object=service("web"))
    assert b.request(Op.GET, kind="ECSMService", namespace="default",
                     name="web") == created
    updated = b.request(Op.UPDATE, object={**created, "spec": {
        **created["spec"], "priority": 3}})
    assert a.request(Op.GET, kind="ECSMService", namespace="default",
                     name="web")["spec"]["priority"] == 3
    assert updated["metadata"]["resourceVersion"] > created["metadata"]["resourceVersion"]


def test_quorum_lost_reads_are_marked_stale_writes_unavailable_and_both_come_back(
        processes: Processes, etcd_env: dict[str, str], etcd_cluster: EtcdCluster,
        clients: list[RegistryClient], cli: RunCli) -> None:
    host = processes.run_dir / "a"
    client = registry_in(processes, host, etcd_env, clients)
    client.request(Op.CREATE, object=service("web"))
    for i in range(1, 3):
        etcd_cluster.kill(i)

    def stale_read() -> bool:
        client.request(Op.GET, kind="ECSMService", namespace="default", name="web")
        return client.last_stale

    wait_until(stale_read, timeout=20, what="a read served stale")
    code, out, err = cli(host, "get", "esvc", "web")
    assert code == 0 and "web" in out
    assert "warning: the registry's store has lost its quorum" in err
    with pytest.raises(Unavailable, match="etcd store unavailable"):
        client.request(Op.CREATE, object=service("db"), requestId="during-loss")
    etcd_cluster.heal()

    def written() -> bool:
        try:
            client.request(Op.CREATE, object=service("after"), requestId="after-loss")
        except Unavailable:
            return False
        return True

    wait_until(written, timeout=20, what="a write once quorum is back")
    client.request(Op.GET, kind="ECSMService", namespace="default", name="after")
    assert not client.last_stale
